"""API of an instance's settings: read, set and unset one value of a role, machine or tag block.

A block is `instances.<i>.roles.<r>.settings` (role-wide), `….machines.<m>.settings` or
`….tags.<t>.settings` (Clan has both per-machine and per-tag blocks, R1.7/R5.1). A set value is
validated against the role's interface with every other definition of the members it reaches
before anything is written. `force` / `default` wrap it as Clan's `mkForce` / `mkDefault`
(`{"_type": "override", "priority": 50 | 1000, "content": …}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.api.writes import InventoryWrite, clan_of, require_machines, require_role, require_tags, write
from pyclan.errors import ClanError


@dataclass(frozen=True)
class SettingValue:
    """One settings value: as defined in its block (`value`, None if not `defined`) and, for a
    member machine or the role, as evaluated (`effective`, interface defaults included)."""

    instance: str
    role: str
    block: str
    path: list[str] = field(default_factory=list)
    machine: str | None = None
    tag: str | None = None
    file: str | None = None
    defined: bool = False
    value: Any = None
    effective: Any = None


def _block_path(instance: str, role: str, machine: str | None, tag: str | None) -> tuple[str, ...]:
    if machine is not None and tag is not None:
        raise ClanError.single("usage-error", "--tag", "give --machine or --tag, not both")
    base = ("instances", instance, "roles", role)
    if machine is not None:
        return (*base, "machines", machine, "settings")
    if tag is not None:
        return (*base, "tags", tag, "settings")
    return (*base, "settings")


def _at(value: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return False, None
        value = value[key]
    return True, value


@register
def get_setting(
    instance: str,
    role: str,
    machine: str | None = None,
    tag: str | None = None,
    path: str | list[str] | None = None,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> SettingValue:
    """A value of a settings block as written, and as evaluated for that machine (or the role)."""
    from pyclan.evaluate.resolve import resolve
    from pyclan.inventory.edit import parse_key_path
    from pyclan.inventory.sources import format_path

    keys = parse_key_path(path)
    clan = open_flake(flake, input_overrides)
    require_role(clan, instance, role)
    block = _block_path(instance, role, machine, tag)
    entry = clan.loaded.inventory.instances[instance].roles.get(role)
    raw: Any = {}
    if entry is not None:
        if machine is not None:
            raw = entry.machines[machine].settings if machine in entry.machines else {}
        elif tag is not None:
            raw = entry.tags[tag].settings if tag in entry.tags else {}
        else:
            raw = entry.settings
    defined, value = _at(raw, keys)
    effective: Any = None
    resolved = resolve(clan.loaded, clan.registry, strict=False).instances.get(instance)
    if resolved is not None and role in resolved.roles and tag is None:
        rrole = resolved.roles[role]
        model = None
        if machine is not None:
            model = rrole.settings.get(machine)
        else:
            try:
                model = rrole.role_only()
            except ClanError:
                model = None
        if model is not None:
            effective = _at(model.model_dump(mode="json", by_alias=True), keys)[1]
    return SettingValue(
        instance=instance, role=role, block=format_path(block), path=list(keys), machine=machine, tag=tag,
        file=clan.loaded.settings_files.get(format_path(block)), defined=defined,
        value=value if defined else None, effective=effective,
    )


def _writable(plan: Any, block: tuple[str, ...], keys: tuple[str, ...]) -> None:
    """Refuse to edit inside (or replace) a non-literal wrapper: a hand edit keeps its meaning."""
    from pyclan.settings.overrides import wrapper_kind

    node = plan.get(block)
    for i, key in enumerate(keys):
        kind = wrapper_kind(node)
        if kind is not None:
            raise _read_only(block, keys[:i], kind)
        if not isinstance(node, dict) or key not in node:
            return
        node = node[key]
    kind = wrapper_kind(node)
    if kind is not None and kind != "override":
        raise _read_only(block, keys, kind)


def _read_only(block: tuple[str, ...], keys: tuple[str, ...], kind: str) -> ClanError:
    from pyclan.inventory.sources import format_path

    return ClanError.single(
        "read-only", format_path((*block, *keys)),
        f"cannot be written: it is defined by a `{kind}` wrapper (mk{kind.capitalize()}), which pyclan does "
        "not edit inside or replace",
        hint="change it by hand in the inventory file, or unset it first",
    )


def _check_member_kind(clan: Any, block: tuple[str, ...], machine: str | None, tag: str | None) -> None:
    if machine is not None:
        require_machines(clan, [machine], ".".join(block[:5]))
    if tag is not None:
        require_tags(clan, [tag], ".".join(block[:5]))


def _tags_as_attrset(plan: Any, tags: tuple[str, ...]) -> None:
    """A tag list (`tags = ["a"]`) becomes `{a = {}}` before a tag gets settings (R1.7 shorthand)."""
    from pyclan.inventory.edit import lookup

    for file in plan.defining(tags):
        current = lookup(plan.data[file], tags)
        if isinstance(current, list):
            plan.set_in(file, tags, {t: {} for t in current})


@register
def set_setting(
    instance: str,
    role: str,
    path: str | list[str],
    value: Any,
    machine: str | None = None,
    tag: str | None = None,
    force: bool = False,
    default: bool = False,
    expected_hash: str | None = None,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> InventoryWrite:
    """Set one settings value (validated against the role's interface before anything is written)."""
    from pyclan.inventory.edit import parse_key_path
    from pyclan.settings.overrides import mk_default, mk_force

    keys = parse_key_path(path)
    if not keys:
        raise ClanError.single("usage-error", "path", "give the setting's path", hint="e.g. `port` or `a.b`")
    if force and default:
        raise ClanError.single("usage-error", "--force", "give --force or --default, not both")
    written = mk_force(value) if force else mk_default(value) if default else value

    def change(plan: Any) -> None:
        clan = clan_of(plan, input_overrides)
        require_role(clan, instance, role)
        block = _block_path(instance, role, machine, tag)
        _check_member_kind(clan, block, machine, tag)
        _writable(plan, block, keys)
        if tag is not None:
            _tags_as_attrset(plan, block[:5])
        plan.set((*block, *keys), written)
        plan.blocks.append((instance, role, block))

    return write(flake, "settings set", change, expected_hash, input_overrides)


@register
def unset_setting(
    instance: str,
    role: str,
    path: str | list[str] | None = None,
    machine: str | None = None,
    tag: str | None = None,
    expected_hash: str | None = None,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> InventoryWrite:
    """Remove one settings value (no path: the whole block); nothing defined there: nothing changes."""
    from pyclan.inventory.edit import parse_key_path

    keys = parse_key_path(path)

    def change(plan: Any) -> None:
        clan = clan_of(plan, input_overrides)
        require_role(clan, instance, role)
        block = _block_path(instance, role, machine, tag)
        if keys:
            _writable(plan, block, keys[:-1])
        target = (*block, *keys)
        if plan.defining(target):
            plan.delete(target)
            plan.blocks.append((instance, role, block))

    return write(flake, "settings unset", change, expected_hash, input_overrides)
