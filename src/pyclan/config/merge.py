"""Merging config fragments from several services into one machine configuration.

Like the module system: the same thing defined identically twice is fine, defined differently
is an error naming both origins. Packages are a set; a user's supplementary groups and keys and
a group's members are unions; other user/group fields must agree where both set them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from pyclan.config.machine_config import GroupSpec, MachineConfig, Origin, UserSpec, construct, invalid_name
from pyclan.errors import Problem

T = TypeVar("T", bound=BaseModel)

_UNION_FIELDS = {"groups", "authorized_keys", "members"}
_NAMED = frozenset({"users", "groups", "units", "hooks"})  # tables whose keys are names on the host


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


_KINDS = ("files", "users", "groups", "units", "hooks", "secrets", "states", "checks", "reloads")


def merge_fragments(
    machine: str, fragments: Sequence[tuple[Origin, MachineConfig]]
) -> tuple[MachineConfig, list[Problem]]:
    result = MachineConfig()
    problems: list[Problem] = []
    tables: dict[str, dict[str, Any]] = {kind: getattr(result, kind) for kind in _KINDS}

    def owner(kind: str, key: str) -> Origin:
        """The first fragment that defined `kind.key` (looked up only when there is a clash)."""
        return next(origin for origin, frag in fragments if key in getattr(frag, kind))

    def place(kind: str, key: str, value: Any, origin: Origin) -> None:
        """A definition already there: equal is fine, records merge, anything else conflicts."""
        table = tables[kind]
        if table[key] == value:
            return
        slot = f"{kind}.{key}"
        if isinstance(value, UserSpec | GroupSpec):
            merged, field = _merge_record(table[key], value)
            if merged is not None:
                table[key] = merged
                return
            problems.append(_conflict(machine, slot, owner(kind, key), origin, f" (field '{field}')"))
            return
        problems.append(_conflict(machine, slot, owner(kind, key), origin, ""))

    def check_name(kind: str, name: str, where: str, origin: Origin) -> None:
        bad = invalid_name(kind, name)
        if bad is not None:
            problems.append(
                Problem("service-error", f"machines.{machine}.{where}", f"{bad[0]}, declared by {origin}", hint=bad[1])
            )

    packages = result.packages
    for origin, frag in fragments:
        defs = frag.__dict__
        for kind in _KINDS:
            defined = defs[kind]
            if not defined:
                continue
            table = tables[kind]
            if kind in _NAMED:
                for key in [k for k in defined if k not in table]:
                    check_name(kind, key, f"{kind}.{key}", origin)
            if table.keys().isdisjoint(defined):  # the common case: nothing defined twice
                table.update(defined)
                continue
            for key, value in defined.items():
                if key in table:
                    place(kind, key, value, origin)
                else:
                    table[key] = value
        for name in defs["packages"]:
            if name not in packages:
                check_name("packages", name, "packages", origin)
                packages.append(name)
    for path in result.files.keys() & result.secrets.keys():
        problems.append(
            _conflict(machine, f"files.{path}", owner("files", path), owner("secrets", path), " (file and secret)")
        )
    packages.sort()
    return result, problems


_FIELDS = tuple(MachineConfig.model_fields)


def copy_config(config: MachineConfig) -> MachineConfig:
    """A copy whose tables can be changed without changing `config` (the specs in them are frozen)."""
    data = config.__dict__
    copied = construct(MachineConfig, {name: data[name].copy() for name in _FIELDS})
    object.__setattr__(copied, "__pydantic_fields_set__", set(config.model_fields_set))
    return copied
