"""API of service instances: list, show (members, settings, form schema), create, delete, members.

Every write goes through `pyclan.api.writes.write`: validated like `pyclan check` before anything
is written, guarded by the clan's lock and by `expected_hash`, landing where
`pyclan.inventory.edit` says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.api.writes import (
    InventoryWrite,
    clan_of,
    require_instance,
    require_machines,
    require_role,
    require_tags,
    write,
)
from pyclan.errors import ClanError, Problem

INSTANCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
NON_LITERAL = ("if", "merge", "order")


@dataclass(frozen=True)
class ModuleRef:
    """`module = {name, input}` of an instance (input None: the bundled library)."""

    name: str
    input: str | None = None


@dataclass(frozen=True)
class RoleMembers:
    """The machines and tags a role names in the inventory."""

    machines: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InstanceSummary:
    """An instance, its module and the machines and tags of each role it uses."""

    name: str
    module: ModuleRef
    roles: dict[str, RoleMembers]


@dataclass(frozen=True)
class InstanceRole:
    """One role of an instance's module: who is in it, its settings blocks and their form schema.

    `schema` is the role's settings JSON Schema (fields of the role-wide block that cannot be
    written are marked `readOnly` with `x-readonly-reason`); `readOnly` maps dotted setting paths
    to the reason they cannot be written: `port` (role-wide), `machines.<m>.port`, `tags.<t>.port`.
    """

    machines: list[str]
    tags: list[str]
    members: list[str]
    description: str
    schema: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    machineSettings: dict[str, dict[str, Any]] = field(default_factory=dict)
    tagSettings: dict[str, dict[str, Any]] = field(default_factory=dict)
    readOnly: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceDetails:
    """An instance with every role of its module (used or not) and the files that define it."""

    name: str
    module: ModuleRef
    files: list[str]
    roles: dict[str, InstanceRole]
    error: str | None = None


@register
def list_instances(flake: str | None = None) -> list[InstanceSummary]:
    """Every service instance of the inventory with its module and each role's machines and tags."""
    inv = open_flake(flake).loaded.inventory
    return [
        InstanceSummary(
            name=name,
            module=ModuleRef(inst.module_name(name), inst.module.input),
            roles={r: RoleMembers(list(role.machines), list(role.tags)) for r, role in inst.roles.items()},
        )
        for name, inst in sorted(inv.instances.items())
    ]


def read_only_paths(block: Any) -> dict[str, str]:
    """Dotted paths of a settings block that pyclan cannot edit (non-literal wrappers), with why."""
    from pyclan.inventory.edit import walk_values
    from pyclan.inventory.sources import format_path
    from pyclan.settings.overrides import wrapper_kind

    out: dict[str, str] = {}
    for path, value in walk_values(block):
        if path and wrapper_kind(value) in NON_LITERAL and not any(
            format_path(path).startswith(p + ".") for p in out
        ):
            out[format_path(path)] = (
                f"defined by a `{wrapper_kind(value)}` wrapper (mk{str(wrapper_kind(value)).capitalize()}), "
                "which only a hand edit can change"
            )
    return out


def _mark_read_only(schema: dict[str, Any], read_only: dict[str, str]) -> dict[str, Any]:
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for path, reason in read_only.items():
            if "." not in path and isinstance(properties.get(path), dict):
                properties[path] = {**properties[path], "readOnly": True, "x-readonly-reason": reason}
    return schema


@register
def show_instance(
    name: str, flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> InstanceDetails:
    """An instance: module, files, and per role its members, settings blocks and settings JSON Schema."""
    from pyclan.evaluate.resolve import resolve
    from pyclan.inventory.edit import read_snapshot
    from pyclan.settings.merge import settings_schema

    clan = open_flake(flake, input_overrides)
    entry = require_instance(clan, name)
    snapshot = read_snapshot(clan.dir)
    files = [f for f in snapshot.files if name in (snapshot.data(f).get("instances") or {})]
    module = ModuleRef(entry.module_name(name), entry.module.input)
    try:
        service = clan.registry.resolve(module.name, module.input, f"instances.{name}")
    except ClanError as err:
        return InstanceDetails(name, module, files, {}, error=err.problems[0].message)
    resolved = resolve(clan.loaded, clan.registry, strict=False).instances.get(name)
    roles: dict[str, InstanceRole] = {}
    for rname, srole in sorted(service.roles.items()):
        role = entry.roles.get(rname)
        block = dict(role.settings) if role else {}
        read_only = read_only_paths(block)
        schema = _mark_read_only(settings_schema(srole.interface), read_only)
        for kind, entries in (("machines", role.machines if role else {}), ("tags", role.tags if role else {})):
            for member, holder in entries.items():
                for path, reason in read_only_paths(holder.settings).items():
                    read_only[f"{kind}.{member}.{path}"] = reason
        members = resolved.roles[rname].members if resolved and rname in resolved.roles else []
        roles[rname] = InstanceRole(
            machines=list(role.machines) if role else [],
            tags=list(role.tags) if role else [],
            members=list(members),
            description=srole.description or "",
            schema=schema,
            settings=block,
            machineSettings={m: dict(v.settings) for m, v in role.machines.items() if v.settings} if role else {},
            tagSettings={t: dict(v.settings) for t, v in role.tags.items() if v.settings} if role else {},
            readOnly=read_only,
        )
    return InstanceDetails(name, module, files, roles)


@register
def create_instance(
    name: str,
    module: str,
    input: str | None = None,
    expected_hash: str | None = None,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> InventoryWrite:
    """Add `instances.<name> = {module = {name, input}}` (any number of instances per module)."""

    def change(plan: Any) -> None:
        if not INSTANCE_NAME.match(name) or len(name) > 100:
            raise ClanError.single(
                "inventory-type", f"instances.{name}", f"invalid instance name {name!r}",
                hint="use letters, digits, '-' and '_' (starting with a letter or digit)",
            )
        clan = clan_of(plan, input_overrides)
        if name in clan.loaded.inventory.instances:
            raise ClanError.single("usage-error", f"instances.{name}", f"instance '{name}' already exists",
                                   hint="choose another name; a module may have any number of instances")
        clan.registry.resolve(module, input, f"instances.{name}")  # unknown module/input: did you mean
        spec: dict[str, Any] = {"name": module}
        if input is not None:
            spec["input"] = input
        plan.set(("instances", name), {"module": spec}, file=plan.tool_file())

    return write(flake, "instances create", change, expected_hash, input_overrides)


@register
def delete_instance(
    name: str, expected_hash: str | None = None, flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> InventoryWrite:
    """Remove an instance from every inventory file that defines it (its vars stay)."""

    def change(plan: Any) -> None:
        require_instance(clan_of(plan, input_overrides), name)
        plan.delete(("instances", name))

    return write(flake, "instances delete", change, expected_hash, input_overrides)


def _members_change(instance: str, role: str, machines: list[str], tags: list[str], adding: bool,
                    input_overrides: dict[str, str] | None) -> Any:
    def change(plan: Any) -> None:
        if not machines and not tags:
            raise ClanError.single("usage-error", f"instances.{instance}.roles.{role}",
                                   "give at least one machine or tag", hint="--machine NAME or --tag TAG")
        clan = clan_of(plan, input_overrides)
        require_role(clan, instance, role)
        base = ("instances", instance, "roles", role)
        entry = clan.loaded.inventory.instances[instance].roles.get(role)
        if adding:
            require_machines(clan, machines, ".".join([*base, "machines"]))
            require_tags(clan, tags, ".".join([*base, "tags"]))
            for m in dict.fromkeys(machines):
                if entry is None or m not in entry.machines:
                    plan.set((*base, "machines", m), {})
            for t in dict.fromkeys(tags):
                if entry is None or t not in entry.tags:
                    _add_tag(plan, (*base, "tags"), t)
            return
        problems = []
        for kind, names, have in (("machines", machines, entry.machines if entry else {}),
                                  ("tags", tags, entry.tags if entry else {})):
            for n in dict.fromkeys(names):
                if n not in have:
                    from pyclan.errors import did_you_mean

                    problems.append(Problem(
                        "usage-error", ".".join([*base, kind, n]),
                        f"'{n}' is not among the {kind} of role '{role}' of instance '{instance}'",
                        hint=did_you_mean(n, have) or f"its {kind}: {', '.join(have) or 'none'}",
                    ))
        if problems:
            raise ClanError(problems)
        for m in dict.fromkeys(machines):
            plan.delete((*base, "machines", m))
        for t in dict.fromkeys(tags):
            _remove_tag(plan, (*base, "tags"), t)

    return change


def _add_tag(plan: Any, path: tuple[str, ...], tag: str) -> None:
    """A role's `tags` is a list (`["all"]`) or an attrset (`{all = {}}`): extend it as it is written."""
    from pyclan.inventory.edit import lookup

    defining = plan.defining(path)
    file = defining[0] if defining else plan.landing(path)
    current = lookup(plan.data[file], path) if defining else None
    if isinstance(current, list):
        plan.append(file, path, tag)
    elif isinstance(current, dict):
        plan.set((*path, tag), {}, file=file)
    else:
        plan.set(path, [tag], file=file)


def _remove_tag(plan: Any, path: tuple[str, ...], tag: str) -> None:
    from pyclan.inventory.edit import lookup

    for file in plan.defining(path):
        current = lookup(plan.data[file], path)
        if isinstance(current, list) and tag in current:
            plan.remove_item(file, path, tag)
        elif isinstance(current, dict) and tag in current:
            plan.delete_in(file, (*path, tag))


@register
def add_member(
    instance: str,
    role: str,
    machines: list[str] | None = None,
    tags: list[str] | None = None,
    expected_hash: str | None = None,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> InventoryWrite:
    """Add machines and/or tags to a role of an instance (already members: nothing changes)."""
    change = _members_change(instance, role, list(machines or []), list(tags or []), True, input_overrides)
    return write(flake, "instances add-member", change, expected_hash, input_overrides)


@register
def remove_member(
    instance: str,
    role: str,
    machines: list[str] | None = None,
    tags: list[str] | None = None,
    expected_hash: str | None = None,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> InventoryWrite:
    """Remove machines and/or tags from a role (a machine's own settings there go with it)."""
    change = _members_change(instance, role, list(machines or []), list(tags or []), False, input_overrides)
    return write(flake, "instances remove-member", change, expected_hash, input_overrides)
