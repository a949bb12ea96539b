"""Evaluate: resolved inventory → generators, exports, then one MachineConfig per machine.

Three passes over the service groups (clan-semantics §7–§9, §11):
1. generators: what vars each machine needs (no var values are read);
2. exports: every perInstance/perMachine/service-level export, checked against its scope, so
   that in pass 3 every member can read every other member's exports without cycles;
3. configs: perMachine first, then perInstance per (role, instance) in sorted order (R9.2),
   fragments merged per machine with their origins.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pyclan.config.generators import Generator
from pyclan.config.machine_config import MachineConfig, Origin, SecretFileSpec
from pyclan.config.merge import copy_config, merge_fragments
from pyclan.errors import ClanError, Problem, unknown_machine
from pyclan.evaluate.resolve import ResolvedInstance, ResolvedInventory, ResolvedRole
from pyclan.perf import gc_paused
from pyclan.services.exports import BUILTIN_INTERFACES, ExportMap, ExportValue, Scope, check_scope
from pyclan.services.service import (
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
from pyclan.settings.merge import extend_settings
from pyclan.vars.view import DeclaredGenerator, VarsView, secret_host_path


@dataclass
class _Group:
    """One service group (R3.1) with lookup tables built once, shared by every call."""

    gid: str
    service: Service
    instances: list[ResolvedInstance]
    views: dict[str, InstanceView] = field(default_factory=dict)
    # instance → machine → `{name, roles}` (roles sorted), made when first read
    refs: dict[str, _Refs] = field(default_factory=dict)
    # machine → what pass 3 calls for it, per (role, instance) in the order R9.2 imports them
    memberships: dict[str, list[_Call]] = field(default_factory=dict)
    _machine_instances: dict[str, list[str]] | None = None

    @property
    def machine_instances(self) -> dict[str, list[str]]:
        """Machine → the instances it is a member of (made when first needed: only perMachine-level
        functions need it)."""
        if self._machine_instances is None:
            found: dict[str, list[str]] = {}
            for inst in self.instances:
                for role in inst.roles.values():
                    for m in role.settings:
                        names = found.get(m)
                        if names is None:
                            found[m] = [inst.name]
                        elif names[-1] != inst.name:
                            names.append(inst.name)
            self._machine_instances = found
        return self._machine_instances


@dataclass
class _Call:
    """One (role, instance) of pass 3: what the call for each of its members needs, made once."""

    fn: Callable[[Any], Any]
    origin: Origin
    label: Label
    role: ResolvedRole
    refs: _Refs  # member → `{name, roles}`
    fixed: dict[str, Any]  # the context's fields that are equal for every member
    # id(settings) → the fragment of a call that read nothing personal to its machine (see _Watched)
    shared: dict[int, MachineConfig | None] = field(default_factory=dict)


class _Refs:
    """Member → `machine = {name, roles}` of one instance (R4.6), made when a function first reads
    it; equal refs of different instances are one object (they are frozen)."""

    def __init__(self, inst: ResolvedInstance, shared: dict[tuple[str, tuple[str, ...]], MachineRef]) -> None:
        self._inst = inst
        self._shared = shared
        self._made: dict[str, MachineRef] = {}

    def __getitem__(self, machine: str) -> MachineRef:
        ref = self._made.get(machine)
        if ref is None:
            roles = tuple(self._inst.roles_of(machine))
            if not roles:
                raise KeyError(machine)
            key = (machine, roles)
            ref = self._made[machine] = self._shared.get(key) or self._shared.setdefault(key, MachineRef(*key))
        return ref


def _groups(resolved: ResolvedInventory, meta: dict[str, Any]) -> list[_Group]:
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
            g.refs[inst.name] = _Refs(inst, refs)
        for rname in sorted(service.roles):
            fn = service.roles[rname].per_instance
            if fn is None:
                continue
            for inst in g.instances:
                if rname in inst.roles:
                    fixed = {
                        "service_name": service.name, "instance_name": inst.name, "role_name": rname,
                        "roles": g.views[inst.name].roles, "meta": meta,
                    }  # fmt: skip
                    call = _Call(
                        fn, Origin(service.name, inst.name, rname), (gid, service.name, inst.name, rname, ""),
                        inst.roles[rname], g.refs[inst.name], fixed,
                    )  # fmt: skip
                    for m in inst.roles[rname].settings:
                        g.memberships.setdefault(m, []).append(call)
        groups.append(g)
    return groups


_UNSHARED: Any = object()


class _Watched(InstanceContext[Any]):
    """The context of a pass-3 call, noting whether the function read anything personal to its
    machine: `machine` (also through `mk_exports`), `vars` or `extend_settings`.

    A role function is a function of its context (as in Clan, where it is a Nix function). If it
    read none of these, its result is the same for every member of that role and instance with the
    same settings (resolve shares one settings object between members with equal definitions),
    and is reused for them instead of calling it again: at 10,000 clients of one role that share
    their settings, one call instead of 10,000.
    """

    _personal: bool

    @classmethod
    def of(
        cls, call: _Call, machine: str, settings: Any, exports: Mapping[str, ExportValue], reader: VarsReader
    ) -> _Watched:
        ctx = _new_object(cls)
        ctx.__dict__ = {
            **call.fixed, "settings": settings, "exports": exports, "_personal": False,
            "_reader": reader, "_call": call, "_member": machine,
        }  # fmt: skip
        return ctx

    @property  # type: ignore[override]
    def machine(self) -> MachineRef:
        d = self.__dict__
        d["_personal"] = True
        ref: MachineRef | None = d.get("_ref")
        if ref is None:
            ref = d["_ref"] = d["_call"].refs[d["_member"]]
        return ref

    @machine.setter
    def machine(self, value: MachineRef) -> None:
        self.__dict__["_ref"] = value

    @property  # type: ignore[override]
    def vars(self) -> VarsReader:
        self.__dict__["_personal"] = True
        reader: VarsReader = self.__dict__["_reader"]
        return reader

    @vars.setter
    def vars(self, value: VarsReader) -> None:
        self.__dict__["_reader"] = value

    @property  # type: ignore[override]
    def _extend(self) -> Callable[[dict[str, Any]], Any]:
        d = self.__dict__
        d["_personal"] = True
        if "_extend_fn" not in d:
            call: _Call = d["_call"]
            machine: str = d["_member"]
            rr = call.role
            path = f"{_label_where(call.label)}.machines.{machine}.settings"
            d["_extend_fn"] = lambda extra: extend_settings(rr.interface, rr.defs[machine], extra, path)
        fn: Callable[[dict[str, Any]], Any] = d["_extend_fn"]
        return fn

    @_extend.setter
    def _extend(self, value: Callable[[dict[str, Any]], Any]) -> None:  # `dataclasses.replace(ctx, …)`
        self.__dict__["_extend_fn"] = value


_new_object = object.__new__


@dataclass(frozen=True)
class ServiceCrash:
    """An exception raised by service code, without the machine it ran for (so equal crashes group)."""

    where: str  # inventory path of what ran: `instances.<i>.roles.<r>`, or the service group id
    what: str  # "role 'peer' of service 'svc' (instance 'vpn')"
    error: str  # "KeyError: 'x'"
    at: str | None  # "services/svc.py:12": the service file and line that raised
    trace: str = field(default="", compare=False)

    def problem(self, machines: Iterable[str]) -> Problem:
        names = sorted(set(machines))
        on = ""
        if len(names) == 1:
            on = f" on machine '{names[0]}'"
        elif names:
            on = " on machines " + ", ".join(f"'{m}'" for m in names)
        at = f" at {self.at}" if self.at else ""
        return Problem(
            "service-error",
            self.where,
            f"{self.what} raised {self.error}{at}{on}",
            hint=self.trace.rstrip() if _debug() and self.trace else "run with --debug to see the traceback",
        )


class ServiceCodeError(ClanError):
    """Service code raised: one crash, for the machines it ran for."""

    def __init__(self, crash: ServiceCrash, machines: Iterable[str] = ()) -> None:
        self.crash = crash
        self.machines = list(machines)
        super().__init__(crash.problem(self.machines))


def _debug() -> bool:
    """`--debug` (or PYCLAN_DEBUG=1 for API callers): show a service crash's traceback in its hint."""
    return os.environ.get("PYCLAN_DEBUG", "") not in ("", "0")


def _where(fn: Callable[..., Any], exc: BaseException, clan_dir: Path | None) -> str | None:
    """The line of the service's own file that raised (the innermost frame in it), else the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # without `_call` itself
    code = getattr(fn, "__code__", None)
    own = [f for f in frames if code is not None and f.filename == code.co_filename]
    frame = own[-1] if own else (frames[-1] if frames else None)
    if frame is None:
        return None
    path = Path(frame.filename)
    if clan_dir is not None:
        with contextlib.suppress(ValueError):
            path = path.relative_to(clan_dir)
    return f"{path}:{frame.lineno}"


# What ran, formatted only when it failed: (service group id, service, instance, role, part)
Label = tuple[str, str, str | None, str | None, str]


def _label_where(label: Label) -> str:
    gid, _service, instance, role, _part = label
    return f"instances.{instance}.roles.{role}" if instance is not None else gid


def _label_what(label: Label) -> str:
    _gid, service, instance, role, part = label
    if role is not None:
        return f"{part}role '{role}' of service '{service}' (instance '{instance}')"
    return f"{part} of service '{service}'"


def _call(fn: Callable[[Any], Any], arg: Any, label: Label, machine: str | None, clan_dir: Path | None) -> Any:
    """Run service code; anything it raises becomes a `ServiceCodeError` naming the service, its file
    and line, and the machine (clear errors a service raises on purpose pass through)."""
    try:
        return fn(arg)
    except ClanError:
        raise
    except Exception as exc:  # service modules are user code
        crash = ServiceCrash(
            _label_where(label),
            _label_what(label),
            f"{type(exc).__name__}: {exc}",
            _where(fn, exc, clan_dir),
            "".join(traceback.format_exception(exc)),
        )
        raise ServiceCodeError(crash, [machine] if machine else []) from None


class Collected:
    """Problems of one pass; equal service crashes are kept once, with all their machines."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.crashes: dict[ServiceCrash, list[str]] = {}

    def add(self, err: ClanError) -> None:
        if isinstance(err, ServiceCodeError):
            self.crashes.setdefault(err.crash, []).extend(err.machines)
        elif isinstance(err, CollectedError):
            self.problems.extend(err.collected.problems)
            for crash, machines in err.collected.crashes.items():
                self.crashes.setdefault(crash, []).extend(machines)
        else:
            self.problems.extend(err.problems)

    def error(self) -> CollectedError:
        return CollectedError(self)

    def all(self) -> list[Problem]:
        out = list(dict.fromkeys(self.problems))
        out.extend(crash.problem(machines) for crash, machines in self.crashes.items())
        return out

    def __bool__(self) -> bool:
        return bool(self.problems or self.crashes)


class CollectedError(ClanError):
    """The problems of a pass, keeping service crashes apart so that callers can group them further."""

    def __init__(self, collected: Collected) -> None:
        self.collected = collected
        super().__init__(collected.all())


class Evaluator:
    """Runs the three passes; results are cached so commands can ask for parts cheaply.

    Each pass keeps going after a problem (collecting all of them) and keeps its partial result:
    `generators()`, `exports()` and `config()` raise every problem of the passes they need, while
    `pyclan check` reads the partial results (`partial=True`) to check everything else as well.
    """

    def __init__(self, resolved: ResolvedInventory) -> None:
        self.resolved = resolved
        self.clan_dir: Path = resolved.loaded.clan_dir
        self.meta: dict[str, Any] = resolved.inventory.meta.to_json()
        with gc_paused():
            self.groups = _groups(resolved, self.meta)
        self._generators: tuple[dict[str, dict[str, DeclaredGenerator]], list[Problem]] | None = None
        self._exports: tuple[dict[str, ExportValue], list[Problem]] | None = None
        # ids of shared fragments (kept alive by their `_Call`) → their merge, made once (no problems)
        self._merged: dict[tuple[int, ...], MachineConfig] = {}

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
        return VarsView(self.clan_dir, machine, self._generator_pass()[0])

    def _run(self, fn: Callable[[Any], Any], arg: Any, label: Label, machine: str | None = None) -> Any:
        return _call(fn, arg, label, machine, self.clan_dir)

    def pass_problems(self) -> list[Problem]:
        """Every problem of the generator and export passes (they are run if not done yet)."""
        return [*self._generator_pass()[1], *self._export_pass()[1]]

    # -- pass 1: generators ---------------------------------------------------------------------
    def generators(self, partial: bool = False) -> dict[str, dict[str, DeclaredGenerator]]:
        """machine → generator name → declaration; shared ones must agree across machines.
        Raises every problem of the pass unless `partial` (then: what could be declared)."""
        declared, problems = self._generator_pass()
        if problems and not partial:
            raise ClanError(problems)
        return declared

    def _generator_pass(self) -> tuple[dict[str, dict[str, DeclaredGenerator]], list[Problem]]:
        if self._generators is not None:
            return self._generators
        declared: dict[str, dict[str, DeclaredGenerator]] = {m: {} for m in self.resolved.machine_names}
        shared: dict[str, tuple[str, DeclaredGenerator]] = {}
        problems = Collected()

        def add(machine: str, gens: Iterable[Generator], origin: Origin) -> None:
            for gen in gens:
                mine = declared[machine]
                if gen.name in mine and mine[gen.name].generator != gen:
                    problems.problems.append(
                        Problem(
                            "vars-error",
                            f"machines.{machine}",
                            f"generator '{gen.name}' is declared differently by {mine[gen.name].origin} "
                            f"and by {origin}",
                        )
                    )
                    continue
                mine[gen.name] = DeclaredGenerator(gen, origin)
                if gen.share:
                    first = shared.setdefault(gen.name, (machine, mine[gen.name]))
                    differ = _shared_diff(first[1].generator, gen)
                    if differ:
                        problems.problems.append(
                            Problem(
                                "vars-error",
                                f"machines.{machine}",
                                f"Machines {first[0]} and {machine} have different definitions for shared "
                                f"generator '{gen.name}' (differ in: {', '.join(differ)}; "
                                f"{first[1].origin} vs {origin})",
                                hint="a shared generator must be declared identically on every machine that uses it",
                            )
                        )

        for g in self.groups:
            with_fn = {r for r, role in g.service.roles.items() if role.generators_fn is not None}
            for inst, rname, m in self._memberships(g, with_fn):
                fn = g.service.roles[rname].generators_fn
                if fn is not None:
                    ctx = self._instance_ctx(g, inst, rname, m, {}, NO_VARS)
                    try:
                        label = (g.gid, g.service.name, inst.name, rname, "the generators of ")
                        gens = self._run(fn, ctx, label, m)
                        add(m, gens, Origin(service=g.service.name, instance=inst.name, role=rname))
                    except ClanError as err:
                        problems.add(err)
            mfn = g.service.machine_generators_fn
            if mfn is not None:
                for m in sorted(g.machine_instances):
                    mctx = self._machine_ctx(g, m, {}, NO_VARS)
                    try:
                        gens = self._run(mfn, mctx, (g.gid, g.service.name, None, None, "machine_generators"), m)
                        add(m, gens, Origin(service=g.service.name))
                    except ClanError as err:
                        problems.add(err)
        self._generators = (declared, problems.all())
        return self._generators

    # -- pass 2: exports ------------------------------------------------------------------------
    def exports(self, partial: bool = False) -> dict[str, ExportValue]:
        """Every export of the clan (R11). Raises every problem of the pass unless `partial`."""
        collected, problems = self._export_pass()
        if problems and not partial:
            raise ClanError(problems)
        return collected

    def _export_pass(self) -> tuple[dict[str, ExportValue], list[Problem]]:
        if self._exports is not None:
            return self._exports
        collected: dict[str, ExportValue] = {}
        empty: dict[str, ExportValue] = {}
        problems = Collected()
        for g in self.groups:
            s = g.service
            contributions: list[tuple[ExportMap, Scope, str]] = []
            with_fn = {r for r, role in s.roles.items() if role.exports_fn is not None}
            for inst, rname, m in self._memberships(g, with_fn):
                fn = s.roles[rname].exports_fn
                if fn is not None:
                    ctx = self._instance_ctx(g, inst, rname, m, empty, self.reader(m))
                    try:
                        out = self._run(fn, ctx, (g.gid, s.name, inst.name, rname, "the exports of "), m)
                    except ClanError as err:
                        problems.add(err)
                        continue
                    contributions.append((out, Scope(s.name, inst.name, rname, m), f"perInstance of role '{rname}'"))
            if s.machine_exports_fn is not None:
                for m in sorted(g.machine_instances):
                    mctx = self._machine_ctx(g, m, empty, self.reader(m))
                    try:
                        out = self._run(s.machine_exports_fn, mctx, (g.gid, s.name, None, None, "machine_exports"), m)
                    except ClanError as err:
                        problems.add(err)
                        continue
                    contributions.append((out, Scope(s.name, machine=m), "perMachine"))
            if s.instance_exports_fn is not None:
                sctx = ServiceContext(service_name=s.name, instances=g.views, meta=self.meta)
                try:
                    out = self._run(s.instance_exports_fn, sctx, (g.gid, s.name, None, None, "the exports"))
                    contributions.append((out, Scope(s.name), "the service's exports"))
                except ClanError as err:
                    problems.add(err)
            try:
                self._check_exports(s, g.gid, contributions, collected)
            except ClanError as err:
                problems.add(err)
        self._exports = (dict(sorted(collected.items())), problems.all())
        return self._exports

    @staticmethod
    def _check_exports(
        s: Service, gid: str, contributions: list[tuple[ExportMap, Scope, str]], collected: dict[str, ExportValue]
    ) -> None:
        for out, scope, origin in contributions:
            if not out:
                continue
            if not s.exports_out:
                raise ClanError.single("export-error", gid, f"Service: '{s.name}' doesn't allow exports")
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

    # -- pass 3: configs ------------------------------------------------------------------------
    def config(self, machine: str, partial: bool = False) -> MachineConfig:
        """The machine's merged configuration; raises every problem found for it (and, unless
        `partial`, every problem of the generator and export passes it builds on)."""
        if machine not in self.resolved.inventory.machines:
            raise ClanError(unknown_machine(machine, self.resolved.inventory.machines))
        problems = Collected()
        exports, export_problems = self._export_pass()
        declared_all, generator_problems = self._generator_pass()
        if not partial:
            problems.problems.extend(generator_problems)
            problems.problems.extend(export_problems)
        reader = self.reader(machine)
        clan_dir = self.clan_dir
        fragments: list[tuple[Origin, MachineConfig]] = []
        reused = True  # every fragment is one that other members share (then so is the merge)
        for g in self.groups:
            s = g.service
            if s.per_machine_fn is not None and machine in g.machine_instances:
                reused = False
                mctx = self._machine_ctx(g, machine, exports, reader)
                label: Label = (g.gid, s.name, None, None, "per_machine")
                try:
                    frag = _call(s.per_machine_fn, mctx, label, machine, clan_dir)
                    if frag is not None:
                        origin = Origin(service=s.name)
                        fragments.append((origin, _check_fragment(frag, label)))
                except ClanError as err:
                    problems.add(err)
            for call in g.memberships.get(machine, ()):
                settings = call.role.settings[machine]
                shared = call.shared.get(id(settings), _UNSHARED)
                if shared is not _UNSHARED:  # an earlier member's call read nothing of its own machine
                    if shared is not None:
                        fragments.append((call.origin, shared))
                    continue
                ctx = _Watched.of(call, machine, settings, exports, reader)
                try:
                    frag = _call(call.fn, ctx, call.label, machine, clan_dir)
                    if frag is not None:
                        frag = frag if type(frag) is MachineConfig else _check_fragment(frag, call.label)
                        fragments.append((call.origin, frag))
                except ClanError as err:
                    problems.add(err)
                    continue
                if ctx._personal:
                    reused = False
                else:
                    call.shared[id(settings)] = frag
        declared = declared_all.get(machine, {})
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
            reused = False
        if not reused:
            merged, merge_problems = merge_fragments(machine, fragments)
        else:  # the same shared fragments as an earlier machine: merge them once
            key = tuple(id(frag) for _, frag in fragments)
            known = self._merged.get(key)
            if known is None:
                merged, merge_problems = merge_fragments(machine, fragments)
                if not merge_problems:
                    self._merged[key] = merged
                    merged = copy_config(merged)
            else:
                merged, merge_problems = copy_config(known), []
        problems.problems.extend(merge_problems)
        if problems:
            raise problems.error()
        return merged

    def configs(self, machines: Iterable[str] | None = None, *, keep: bool = True) -> dict[str, MachineConfig]:
        """Configs of the given (default: all) machines, collecting every machine's problems
        (a crash of the same service code on several machines is reported once, naming them all).

        `keep=False` evaluates each and lets it go (`pyclan check` wants only the problems; at
        100,000 machines the configs would be most of the memory)."""
        out: dict[str, MachineConfig] = {}
        problems = Collected()
        with gc_paused():
            problems.problems.extend(self.pass_problems())
            for m in machines if machines is not None else self.resolved.machine_names:
                try:
                    config = self.config(m, partial=True)
                except ClanError as err:
                    problems.add(err)
                    continue
                if keep:
                    out[m] = config
        if problems:
            raise problems.error()
        return out


def _check_fragment(frag: Any, label: Label) -> MachineConfig:
    """A role function's result must be a MachineConfig (its names are checked when fragments merge,
    naming the service, instance and role that declared them)."""
    if frag.__class__ is not MachineConfig and not isinstance(frag, MachineConfig):
        raise ClanError.single(
            "service-error",
            _label_where(label),
            f"{_label_what(label)} must return a MachineConfig or None, not {type(frag).__name__}",
        )
    return frag


def _shared_diff(a: Generator, b: Generator) -> list[str]:
    """The parts of two declarations of a shared generator that differ (R12.2): everything that
    decides its values (the vars validation definition) plus each file's `deploy`; owner, group
    and mode may differ per machine."""
    from pyclan.config.validation_hash import definition

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
