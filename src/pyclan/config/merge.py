"""Merging config fragments from several services into one machine configuration.

Like the module system: the same thing defined identically twice is fine, defined differently
is an error naming both origins. Packages are a set; a user's supplementary groups and keys and
a group's members are unions; other user/group fields must agree where both set them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from pyclan.config.machine_config import GroupSpec, MachineConfig, Origin, UserSpec
from pyclan.errors import Problem

T = TypeVar("T", bound=BaseModel)

_UNION_FIELDS = {"groups", "authorized_keys", "members"}


def _conflict(machine: str, what: str, a: Origin, b: Origin, detail: str) -> Problem:
    return Problem(
        "config-conflict",
        f"machines.{machine}.{what}",
        f"{what} is defined differently by {a} and by {b}{detail}",
        hint="make the two definitions equal, or let only one service define it",
    )


def _merge_record(existing: T, new: T) -> tuple[T | None, str]:
    """Merge two user/group specs; returns (merged, "") or (None, field that differs)."""
    data: dict[str, Any] = existing.model_dump()
    for key, value in new.model_dump().items():
        old = data[key]
        if key in _UNION_FIELDS:
            data[key] = tuple(dict.fromkeys([*old, *value]))
        elif old != value:
            default = type(existing).model_fields[key].default
            if value == default:
                continue
            if old == default:
                data[key] = value
                continue
            return None, key
    return type(existing).model_validate(data), ""


def merge_fragments(
    machine: str, fragments: Sequence[tuple[Origin, MachineConfig]]
) -> tuple[MachineConfig, list[Problem]]:
    result = MachineConfig()
    owners: dict[str, Origin] = {}
    problems: list[Problem] = []

    def place(kind: str, table: dict[str, Any], key: str, value: Any, origin: Origin) -> None:
        slot = f"{kind}.{key}"
        if key not in table:
            table[key] = value
            owners[slot] = origin
            return
        if table[key] == value:
            return
        if isinstance(value, UserSpec | GroupSpec):
            merged, field = _merge_record(table[key], value)
            if merged is not None:
                table[key] = merged
                return
            problems.append(_conflict(machine, f"{slot}", owners[slot], origin, f" (field '{field}')"))
            return
        problems.append(_conflict(machine, slot, owners[slot], origin, ""))

    for origin, frag in fragments:
        for path, spec in frag.files.items():
            place("files", result.files, path, spec, origin)
        for name in frag.packages:
            if name not in result.packages:
                result.packages.append(name)
        for name, user in frag.users.items():
            place("users", result.users, name, user, origin)
        for name, group in frag.groups.items():
            place("groups", result.groups, name, group, origin)
        for name, unit in frag.units.items():
            place("units", result.units, name, unit, origin)
        for name, hook in frag.hooks.items():
            place("hooks", result.hooks, name, hook, origin)
        for path, secret in frag.secrets.items():
            place("secrets", result.secrets, path, secret, origin)
        for name, check in frag.checks.items():
            place("checks", result.checks, name, check, origin)
        for name, reload in frag.reloads.items():
            place("reloads", result.reloads, name, reload, origin)
    for path in result.files.keys() & result.secrets.keys():
        problems.append(
            _conflict(
                machine, f"files.{path}", owners[f"files.{path}"], owners[f"secrets.{path}"], " (file and secret)"
            )
        )
    result.packages.sort()
    return result, problems
