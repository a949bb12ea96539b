"""Evaluate: resolved inventory → generators, exports, then one MachineConfig per machine.

Three passes over the service groups (clan-semantics §7–§9, §11):
1. generators: what vars each machine needs (no var values are read);
2. exports: every perInstance/perMachine/service-level export, checked against its scope, so
   that in pass 3 every member can read every other member's exports without cycles;
3. configs: perMachine first, then perInstance per (role, instance) in sorted order (R9.2),
   fragments merged per machine with their origins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pyclan.config.machine_config import MachineConfig, Origin, SecretFileSpec
from pyclan.config.merge import merge_fragments
from pyclan.errors import ClanError, Problem, ProblemList
from pyclan.evaluate.resolve import ResolvedInstance, ResolvedInventory
from pyclan.evaluate.settings import extend_settings
from pyclan.evaluate.vars_view import DeclaredGenerator, VarsView, secret_host_path
from pyclan.perf import gc_paused
from pyclan.services.api import (
    NO_VARS,
    InstanceContext,
    InstanceView,
    MachineContext,
    MachineRef,
    MemberMap,
    RoleView,
    Service,
    ServiceContext,
    VarsReader,
)
from pyclan.services.exports import BUILTIN_INTERFACES, ExportMap, ExportValue, Scope, check_scope
from pyclan.vars.model import Generator


@dataclass
class _Group:
    """One service group (R3.1) with lookup tables built once, shared by every call."""

    gid: str
    service: Service
    instances: list[ResolvedInstance]
    views: dict[str, InstanceView] = field(default_factory=dict)
    machine_instances: dict[str, list[str]] = field(default_factory=dict)  # machine → instances
    # machine → (role, instance) in the order R9.2 imports them: roles sorted, then instances
    memberships: dict[str, list[tuple[str, ResolvedInstance]]] = field(default_factory=dict)
    # instance → machine → `{name, roles}` (roles sorted), made once for every member
    refs: dict[str, dict[str, MachineRef]] = field(default_factory=dict)
    # (role, instance) → what pass 3 needs per call, made once: function, origin, error label
    calls: dict[tuple[str, str], tuple[Callable[[Any], Any], Origin, str]] = field(default_factory=dict)


def _groups(resolved: ResolvedInventory) -> list[_Group]:
    groups = []
    refs: dict[tuple[str, tuple[str, ...]], MachineRef] = {}  # equal refs shared (they are frozen)
    for gid, (service, instances) in resolved.services().items():
        g = _Group(gid, service, sorted(instances, key=lambda i: i.name))
        for inst in g.instances:
            g.views[inst.name] = InstanceView(
                roles={
                    r: RoleView(machines=MemberMap(role.settings), role_only=role.role_only)
                    for r, role in inst.roles.items()
                }
            )
            roles_of: dict[str, list[str]] = {}
            for rname in sorted(inst.roles):
                for m in inst.roles[rname].settings:
                    roles_of.setdefault(m, []).append(rname)
            mine = g.refs[inst.name] = {}
            for m, roles in roles_of.items():
                key = (m, tuple(roles))
                ref = refs.get(key)
                mine[m] = ref if ref is not None else refs.setdefault(key, MachineRef(*key))
            for m in roles_of:
                g.machine_instances.setdefault(m, []).append(inst.name)
        for rname in sorted(service.roles):
            fn = service.roles[rname].per_instance
            if fn is None:
                continue
            for inst in g.instances:
                if rname in inst.roles:
                    g.calls[rname, inst.name] = (fn, Origin(service.name, inst.name, rname), f"{gid}.roles.{rname}")
                    for m in inst.roles[rname].settings:
                        g.memberships.setdefault(m, []).append((rname, inst))
        groups.append(g)
    return groups


def _call(what: str, fn: Callable[[Any], Any], arg: Any) -> Any:
    """Run service code; anything it raises becomes a clear error naming the service function."""
    try:
        return fn(arg)
    except ClanError:
        raise
    except Exception as exc:  # service modules are user code
        raise ClanError.single("service-error", what, f"{type(exc).__name__}: {exc}") from None


class Evaluator:
    """Runs the three passes; results are cached so commands can ask for parts cheaply."""

    def __init__(self, resolved: ResolvedInventory) -> None:
        self.resolved = resolved
        self.clan_dir: Path = resolved.loaded.clan_dir
        self.meta: dict[str, Any] = resolved.inventory.meta.to_json()
        with gc_paused():
            self.groups = _groups(resolved)
        self._generators: dict[str, dict[str, DeclaredGenerator]] | None = None
        self._exports: dict[str, ExportValue] | None = None

    # -- contexts ------------------------------------------------------------------------------
    def _instance_ctx(
        self,
        g: _Group,
        inst: ResolvedInstance,
        role: str,
        machine: str,
        exports: Mapping[str, ExportValue],
        reader: VarsReader,
    ) -> InstanceContext[Any]:
        rr = inst.roles[role]

        def extend(extra: dict[str, Any]) -> BaseModel:
            path = f"instances.{inst.name}.roles.{role}.machines.{machine}.settings"
            return extend_settings(rr.interface, rr.defs[machine], extra, path)

        return InstanceContext(
            service_name=g.service.name,
            instance_name=inst.name,
            role_name=role,
            machine=g.refs[inst.name][machine],
            roles=g.views[inst.name].roles,
            settings=rr.settings[machine],
            meta=self.meta,
            exports=exports,
            vars=reader,
            _extend=extend,
        )

    def _machine_ctx(
        self, g: _Group, machine: str, exports: Mapping[str, ExportValue], reader: VarsReader
    ) -> MachineContext:
        names = g.machine_instances.get(machine, [])
        roles = sorted({r for i in names for r in g.refs[i][machine].roles})
        return MachineContext(
            service_name=g.service.name,
            machine=MachineRef(machine, tuple(roles)),
            instances={i: g.views[i] for i in names},
            meta=self.meta,
            exports=exports,
            vars=reader,
        )

    def _memberships(self, g: _Group, roles: set[str]) -> Iterable[tuple[ResolvedInstance, str, str]]:
        """(instance, role, member) of the given roles, in order; other roles are not walked."""
        if not roles:
            return
        for inst in g.instances:
            for rname in sorted(inst.roles):
                if rname not in roles:
                    continue
                settings = inst.roles[rname].settings
                for m in inst.roles[rname].members:
                    if m in settings:
                        yield inst, rname, m

    def reader(self, machine: str) -> VarsReader:
        return VarsView(self.clan_dir, machine, self.generators())

    # -- pass 1: generators ---------------------------------------------------------------------
    def generators(self) -> dict[str, dict[str, DeclaredGenerator]]:
        """machine → generator name → declaration; shared ones must agree across machines."""
        if self._generators is not None:
            return self._generators
        declared: dict[str, dict[str, DeclaredGenerator]] = {m: {} for m in self.resolved.machine_names}
        shared: dict[str, tuple[str, DeclaredGenerator]] = {}
        problems = ProblemList()

        def add(machine: str, gens: Iterable[Generator], origin: Origin) -> None:
            for gen in gens:
                mine = declared[machine]
                if gen.name in mine and mine[gen.name].generator != gen:
                    problems.add(
                        "vars-error",
                        f"machines.{machine}",
                        f"generator '{gen.name}' is declared differently by {mine[gen.name].origin} and by {origin}",
                    )
                    continue
                mine[gen.name] = DeclaredGenerator(gen, origin)
                if gen.share:
                    first = shared.setdefault(gen.name, (machine, mine[gen.name]))
                    differ = _shared_diff(first[1].generator, gen)
                    if differ:
                        problems.add(
                            "vars-error",
                            f"machines.{machine}",
                            f"Machines {first[0]} and {machine} have different definitions for shared "
                            f"generator '{gen.name}' (differ in: {', '.join(differ)}; {first[1].origin} vs {origin})",
                            hint="a shared generator must be declared identically on every machine that uses it",
                        )

        for g in self.groups:
            with_fn = {r for r, role in g.service.roles.items() if role.generators_fn is not None}
            for inst, rname, m in self._memberships(g, with_fn):
                fn = g.service.roles[rname].generators_fn
                if fn is not None:
                    ctx = self._instance_ctx(g, inst, rname, m, {}, NO_VARS)
                    add(
                        m,
                        _call(f"{g.gid}.roles.{rname}.generators", fn, ctx),
                        Origin(service=g.service.name, instance=inst.name, role=rname),
                    )
            mfn = g.service.machine_generators_fn
            if mfn is not None:
                for m in sorted(g.machine_instances):
                    mctx = self._machine_ctx(g, m, {}, NO_VARS)
                    add(
                        m,
                        _call(f"{g.gid}.machine_generators", mfn, mctx),
                        Origin(service=g.service.name),
                    )
        problems.raise_if_any()
        self._generators = declared
        return declared

    # -- pass 2: exports ------------------------------------------------------------------------
    def exports(self) -> dict[str, ExportValue]:
        if self._exports is not None:
            return self._exports
        collected: dict[str, ExportValue] = {}
        empty: dict[str, ExportValue] = {}
        for g in self.groups:
            s = g.service
            contributions: list[tuple[ExportMap, Scope, str]] = []
            with_fn = {r for r, role in s.roles.items() if role.exports_fn is not None}
            for inst, rname, m in self._memberships(g, with_fn):
                fn = s.roles[rname].exports_fn
                if fn is not None:
                    ctx = self._instance_ctx(g, inst, rname, m, empty, self.reader(m))
                    out = _call(f"{g.gid}.roles.{rname}.exports", fn, ctx)
                    contributions.append((out, Scope(s.name, inst.name, rname, m), f"perInstance of role '{rname}'"))
            if s.machine_exports_fn is not None:
                for m in sorted(g.machine_instances):
                    mctx = self._machine_ctx(g, m, empty, self.reader(m))
                    out = _call(f"{g.gid}.machine_exports", s.machine_exports_fn, mctx)
                    contributions.append((out, Scope(s.name, machine=m), "perMachine"))
            if s.instance_exports_fn is not None:
                sctx = ServiceContext(service_name=s.name, instances=g.views, meta=self.meta)
                out = _call(f"{g.gid}.exports", s.instance_exports_fn, sctx)
                contributions.append((out, Scope(s.name), "the service's exports"))
            for out, scope, origin in contributions:
                if not out:
                    continue
                if not s.exports_out:
                    raise ClanError.single("export-error", g.gid, f"Service: '{s.name}' doesn't allow exports")
                for key, value in out.items():
                    check_scope(key, scope, origin)
                    check_scope(key, Scope(s.name), "the service")
                    for iface in value:
                        if iface not in s.exports_out:
                            raise ClanError.single(
                                "export-error",
                                key,
                                f"Export interface: '{iface}' doesn't exist",
                                hint=f"service '{s.name}' declares exports_out = {list(s.exports_out)}",
                            )
                    slot = collected.setdefault(key, {t: None for t in s.exports_out})
                    for iface, v in value.items():
                        base = dict(BUILTIN_INTERFACES.get(iface, {}))
                        if isinstance(slot.get(iface), dict):
                            base.update(slot[iface])
                        slot[iface] = _deep_merge(base, v) if isinstance(v, dict) else v
        self._exports = dict(sorted(collected.items()))
        return self._exports

    # -- pass 3: configs ------------------------------------------------------------------------
    def config(self, machine: str) -> MachineConfig:
        if machine not in self.resolved.inventory.machines:
            raise ClanError.single("unknown-machine", f"machines.{machine}", f"no machine named '{machine}'")
        exports = self.exports()
        reader = self.reader(machine)
        fragments: list[tuple[Origin, MachineConfig]] = []
        for g in self.groups:
            s = g.service
            if machine not in g.machine_instances:
                continue
            if s.per_machine_fn is not None:
                mctx = self._machine_ctx(g, machine, exports, reader)
                frag = _call(f"{g.gid}.per_machine", s.per_machine_fn, mctx)
                if frag is not None:
                    fragments.append((Origin(service=s.name), _check_fragment(frag, g.gid)))
            for rname, inst in g.memberships.get(machine, ()):
                fn, origin, what = g.calls[rname, inst.name]
                frag = _call(what, fn, self._instance_ctx(g, inst, rname, machine, exports, reader))
                if frag is not None:
                    fragments.append((origin, frag if type(frag) is MachineConfig else _check_fragment(frag, g.gid)))
        declared = self.generators()[machine]
        secrets = MachineConfig() if declared else None
        for name, decl in sorted(declared.items()):
            for fname, vf in sorted(decl.generator.files.items()):
                if vf.secret and vf.deploy:
                    path = secret_host_path(name, fname)
                    assert secrets is not None
                    secrets.secrets[path] = SecretFileSpec(
                        path=path,
                        generator=name,
                        file=fname,
                        shared=decl.generator.share,
                        owner=vf.owner,
                        group=vf.group,
                        mode=vf.mode,
                        needed_for=vf.neededFor,
                    )
        if secrets is not None and secrets.secrets:
            fragments.append((Origin(service="vars"), secrets))
        merged, problems = merge_fragments(machine, fragments)
        if problems:
            raise ClanError(problems)
        return merged

    def configs(self, machines: Iterable[str] | None = None, *, keep: bool = True) -> dict[str, MachineConfig]:
        """Configs of the given (default: all) machines, collecting every machine's problems.

        `keep=False` evaluates each and lets it go (`pyclan check` wants only the problems; at
        100,000 machines the configs would be most of the memory)."""
        out: dict[str, MachineConfig] = {}
        problems: list[Problem] = []
        with gc_paused():
            for m in machines if machines is not None else self.resolved.machine_names:
                try:
                    config = self.config(m)
                except ClanError as err:
                    problems.extend(err.problems)
                    continue
                if keep:
                    out[m] = config
        if problems:
            raise ClanError(problems)
        return out


def _check_fragment(frag: Any, where: str) -> MachineConfig:
    if not isinstance(frag, MachineConfig):
        raise ClanError.single(
            "service-error", where, f"a role function must return a MachineConfig or None, not {type(frag).__name__}"
        )
    return frag


def _shared_diff(a: Generator, b: Generator) -> list[str]:
    """The parts of two declarations of a shared generator that differ (R12.2): everything that
    decides its values (the vars validation definition) plus each file's `deploy`; owner, group
    and mode may differ per machine."""
    from pyclan.vars.validation import definition

    da, db = definition(a), definition(b)
    differ = [k for k in da if da[k] != db[k]]
    if {f: v.deploy for f, v in a.files.items()} != {f: v.deploy for f, v in b.files.items()}:
        differ.append("deploy")
    return differ


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out
