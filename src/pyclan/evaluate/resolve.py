"""Resolve: inventory + service registry → members and merged settings per (instance, role, machine).

This is clan-semantics §2–§5 and §10: every instance's module is looked up, every role's
members are computed from machines ∪ tags, and every member's settings are merged and
validated eagerly. All problems are collected and raised together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from pyclan.errors import ClanError, Problem, ProblemList, did_you_mean
from pyclan.inventory.load import LoadedInventory
from pyclan.inventory.models import Inventory
from pyclan.inventory.tags import effective_tags, machines_with_tag
from pyclan.perf import gc_paused
from pyclan.services.constraints import Check, service_checks
from pyclan.services.registry import ServiceRegistry, group_id
from pyclan.services.service import InstanceView, MemberMap, RoleView, Service, ServiceContext
from pyclan.settings.merge import SettingsDef, SettingsMerger, merge_settings


@dataclass
class ResolvedRole:
    name: str
    members: list[str]  # sorted
    settings: dict[str, BaseModel]  # member → effective settings
    defs: dict[str, list[SettingsDef]]  # member → its definitions (for extend_settings)
    role_only: Callable[[], BaseModel]
    interface: type[BaseModel]


@dataclass
class ResolvedInstance:
    name: str
    module_name: str
    input: str | None
    service: Service
    group: str  # `<input>-<name>` (R3.1)
    roles: dict[str, ResolvedRole]  # every role the inventory entry mentions

    def roles_of(self, machine: str) -> list[str]:
        return sorted(r for r, role in self.roles.items() if machine in role.settings)


@dataclass
class ResolvedInventory:
    loaded: LoadedInventory
    instances: dict[str, ResolvedInstance]
    tags: dict[str, list[str]]  # machine → effective tags
    checks: list[Check]
    warnings: list[str]
    # Problems found when resolved with `strict=False` (the rest of the result is then partial:
    # instances whose module failed are left out, members whose settings failed have no settings).
    problems: list[Problem] = field(default_factory=list)
    _dumps: dict[int, Any] = field(default_factory=dict, repr=False)
    _names: list[str] | None = field(default=None, repr=False)  # the machines, sorted once

    @property
    def inventory(self) -> Inventory:
        return self.loaded.inventory

    @property
    def machine_names(self) -> list[str]:
        if self._names is None or len(self._names) != len(self.inventory.machines):
            self._names = sorted(self.inventory.machines)
        return list(self._names)

    def services(self) -> dict[str, tuple[Service, list[ResolvedInstance]]]:
        """Service groups (R3.1): group id → (module of the first instance, its instances)."""
        groups: dict[str, tuple[Service, list[ResolvedInstance]]] = {}
        for inst in self.instances.values():
            groups.setdefault(inst.group, (inst.service, []))[1].append(inst)
        return dict(sorted(groups.items()))

    def dump_settings(self, model: BaseModel) -> Any:
        key = id(model)
        if key not in self._dumps:
            self._dumps[key] = model.model_dump(mode="json", by_alias=True)
        return self._dumps[key]

    def to_json(self) -> dict[str, Any]:
        """The `pyclan inventory resolve --json` shape that tools depend on."""
        tags = self.tags
        machines: dict[str, Any] = {}
        instances_of: dict[str, dict[str, Any]] = {}  # machine → its "instances" object
        for m in self.machine_names:
            mine = instances_of[m] = {}
            machines[m] = {"tags": tags.get(m, []), "instances": mine}
        members: dict[str, dict[str, list[str]]] = {}
        for iname in sorted(self.instances):
            inst = self.instances[iname]
            roles = sorted(inst.roles.items())
            members[iname] = {r: list(role.members) for r, role in roles}
            for rname, role in roles:
                # members sharing a settings object (resolve shares equal ones) share its JSON too
                dumped: dict[int, dict[str, Any]] = {}
                for m, settings in role.settings.items():
                    value = dumped.get(id(settings))
                    if value is None:
                        value = dumped[id(settings)] = {"settings": self.dump_settings(settings)}
                    entry = instances_of[m].get(iname)
                    if entry is None:
                        entry = instances_of[m][iname] = {"service": inst.module_name, "input": inst.input, "roles": {}}
                    entry["roles"][rname] = value
        return {
            "machines": machines,
            "members": members,
            "checks": [c.to_json() for c in self.checks],
            "warnings": list(self.warnings),
        }


def _settings_path(instance: str, role: str, machine: str | None = None) -> str:
    base = f"instances.{instance}.roles.{role}"
    return f"{base}.machines.{machine}.settings" if machine is not None else f"{base}.settings"


def resolve(
    loaded: LoadedInventory, registry: ServiceRegistry, merger: SettingsMerger | None = None, strict: bool = True
) -> ResolvedInventory:
    """Resolve the whole inventory; raise one ClanError listing every problem found.

    With ``strict=False`` nothing is raised: the problems are in `ResolvedInventory.problems` and
    the result holds what could be resolved (for `pyclan check`, which goes on to later stages).
    """
    with gc_paused():
        return _resolve(loaded, registry, merger or SettingsMerger(), strict)


def _resolve(
    loaded: LoadedInventory, registry: ServiceRegistry, merger: SettingsMerger, strict: bool
) -> ResolvedInventory:
    inv = loaded.inventory
    problems = ProblemList()
    warnings: list[str] = list(loaded.warnings)
    tags = effective_tags(inv)
    tag_members = machines_with_tag(inv)
    interned: dict[frozenset[str], frozenset[str]] = {}  # machines with equal tags share one set (faster lookups)
    tag_sets = {m: interned.setdefault(fs, fs) for m, t in tags.items() for fs in (frozenset(t),)}
    machine_names = set(inv.machines)
    all_sorted = sorted(machine_names)
    available_tags = _json_list(_carried_tags(inv.machines, tags))
    files = loaded.settings_files
    instances: dict[str, ResolvedInstance] = {}

    for iname in sorted(inv.instances):
        instance = inv.instances[iname]
        ipath = f"instances.{iname}"
        module_name = instance.module_name(iname)
        # Unknown machines are reported whatever else is wrong with the instance (all problems at once).
        for rname in sorted(instance.roles):
            for m in instance.roles[rname].machines:
                if m not in machine_names:
                    problems.add(
                        "unknown-machine",
                        f"{ipath}.roles.{rname}.machines.{m}",
                        f"machine '{m}' is not defined in `machines`",
                        hint=did_you_mean(m, machine_names)
                        or f"add [machines.{m}] to the inventory, or use one of: {', '.join(sorted(machine_names))}",
                    )
        try:
            service = registry.resolve(module_name, instance.module.input, ipath)
        except ClanError as err:
            problems.extend(err.problems)
            continue

        unknown_roles = sorted(set(instance.roles) - set(service.roles))
        if unknown_roles:
            problems.add(
                "unknown-role",
                f"{ipath}.roles.{unknown_roles[0]}",
                f"Instance: '{ipath}' uses the following roles:\n{_json_list(unknown_roles)}\n\n"
                f"But the clan-service module '{service.name}' only defines roles:\n"
                f"{_json_list(sorted(service.roles))}\n\nError context: {group_id(instance.module.input, module_name)}",
                hint=did_you_mean(unknown_roles[0], service.roles) or f"use one of: {', '.join(sorted(service.roles))}",
            )

        resolved_roles: dict[str, ResolvedRole] = {}
        for rname in sorted(instance.roles):
            if rname not in service.roles:
                continue
            role = instance.roles[rname]
            interface = service.roles[rname].interface
            members: set[str] = {m for m in role.machines if m in machine_names}
            for t in sorted(role.tags):
                found = tag_members.get(t)
                if found:
                    members |= found
                else:
                    warnings.append(
                        f"Service instance '{iname}': - {rname} tags: no machine with tag '{t}' found.\n"
                        f"Available tags: {available_tags}"
                    )

            role_def = (
                [SettingsDef(role.settings, _settings_path(iname, rname), files.get(_settings_path(iname, rname)))]
                if role.settings
                else []
            )
            tag_defs = [
                (t, SettingsDef(role.tags[t].settings, tpath, files.get(tpath)))
                for t in sorted(role.tags)
                if role.tags[t].settings
                for tpath in [f"instances.{iname}.roles.{rname}.tags.{t}.settings"]
            ]
            settings: dict[str, BaseModel] = {}
            defs_of: dict[str, list[SettingsDef]] = {}
            # Members without own settings and with the same matching tags share one result.
            shared: dict[tuple[str, ...], tuple[BaseModel, list[SettingsDef]]] = {}
            by_tags: dict[frozenset[str], tuple[BaseModel, list[SettingsDef]]] = {}  # the same, by tag set
            # a large role: picking its members from all machines (sorted once) beats sorting them
            big = len(members) * 8 > len(all_sorted)
            sorted_members = [m for m in all_sorted if m in members] if big else sorted(members)
            own_blocks = role.machines
            for m in sorted_members:
                own = own_blocks.get(m) if own_blocks else None
                own_settings = own.settings if own is not None and own.settings else None
                mtags = tag_sets[m]
                if own_settings is None:
                    known = by_tags.get(mtags)
                    if known is not None:
                        settings[m], defs_of[m] = known
                        continue
                    applied = tuple(t for t, _ in tag_defs if t in mtags)
                    if applied in shared:
                        settings[m], defs_of[m] = by_tags[mtags] = shared[applied]
                        continue
                mpath = _settings_path(iname, rname, m)
                defs = list(role_def)
                if own_settings is not None:
                    defs.append(SettingsDef(own_settings, mpath, files.get(mpath)))
                defs.extend(d for t, d in tag_defs if t in mtags)
                model, errs = merger.merge(interface, defs, mpath)
                if errs:
                    problems.extend(errs)
                    continue
                assert model is not None
                settings[m] = model
                defs_of[m] = defs
                if own_settings is None:
                    shared[applied] = by_tags[mtags] = (model, defs)

            if not members and role_def:
                # Nobody evaluates these yet (R5.4): check them on their own (R5.9 view), so a bad value
                # does not wait for the first member. Missing options may still come from members' blocks.
                rpath = _settings_path(iname, rname)
                _model, errs = merger.merge(interface, role_def, rpath)
                problems.extend(p for p in errs if p.kind != "missing-setting")

            resolved_roles[rname] = ResolvedRole(
                name=rname,
                members=sorted_members,
                settings=settings,
                defs=defs_of,
                role_only=_role_only_view(interface, role_def, _settings_path(iname, rname)),
                interface=interface,
            )
        instances[iname] = ResolvedInstance(
            name=iname,
            module_name=module_name,
            input=instance.module.input,
            service=service,
            group=group_id(instance.module.input, module_name),
            roles=resolved_roles,
        )

    if problems and len(loaded.files) == 1:
        # one source file: every problem is in it (settings problems already name theirs)
        problems.items = [p if p.file else replace(p, file=loaded.files[0]) for p in problems.items]
    if strict:
        problems.raise_if_any()
    result = ResolvedInventory(
        loaded=loaded, instances=instances, tags=tags, checks=[], warnings=warnings, problems=problems.items,
        _names=all_sorted,
    )
    for service, group in result.services().values():
        group_members = {i.name: {r: role.members for r, role in i.roles.items()} for i in group}
        result.checks.extend(service_checks(service, group_members))
        if service.checks_fn is not None:
            views = {
                i.name: InstanceView({r: RoleView(MemberMap(x.settings), x.role_only) for r, x in i.roles.items()})
                for i in group
            }
            result.checks.extend(service.checks_fn(ServiceContext(service.name, views, inv.meta.to_json())))
    return result


def _json_list(items: list[str]) -> str:
    """A list as Nix's `builtins.toJSON` writes it: `["peer","server"]`."""
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False)


def _carried_tags(machines: Iterable[str], tags: Mapping[str, list[str]]) -> list[str]:
    """The tags inventory machines carry (R1.5), in the order Clan lists them for an unknown tag:
    machines in reverse name order, each machine's effective tags, duplicates removed."""
    out: list[str] = []
    for m in sorted(machines, reverse=True):
        out.extend(tags.get(m, ()))
    return list(dict.fromkeys(out))


def _role_only_view(interface: type[BaseModel], role_def: list[SettingsDef], path: str) -> Callable[[], BaseModel]:
    """R5.9: role settings without machine or tag settings, evaluated only when read."""
    cache: list[BaseModel] = []

    def view() -> BaseModel:
        if not cache:
            model, errs = merge_settings(interface, role_def, path)
            if errs or model is None:
                raise ClanError(errs or [Problem("settings-type", path, "role settings cannot be evaluated")])
            cache.append(model)
        return cache[0]

    return view
