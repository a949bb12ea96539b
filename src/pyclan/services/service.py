"""The service-module API, mirroring Clan's `clan.service` (clan-semantics §6–§8, §10–§11).

A service module is a Python file that defines `service = Service(...)` and registers roles:

    service = Service("hello-world", description="Minimal example")

    @service.role("morning", interface=Greeting, description="A morning greeting machine")
    def morning(ctx: InstanceContext[Greeting]) -> MachineConfig:
        return MachineConfig().file("/etc/hello", f"{ctx.settings.greeting} World!")

Per role, optional extra functions hang off the returned `Role`: `@morning.exports`,
`@morning.generators`. Per service: `@service.per_machine`, `@service.machine_exports`,
`@service.machine_generators`, `@service.instance_exports` (service-level exports).
The arguments are Clan's: instance name, machine {name, roles}, every used role with its
members' settings, own settings, meta, exports, extend_settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from pyclan.config.generators import Generator
from pyclan.config.machine_config import MachineConfig
from pyclan.errors import ClanError
from pyclan.services.exports import ExportMap, ExportValue, build_scope_key

if TYPE_CHECKING:
    from pyclan.services.constraints import Check

Category = Literal[
    "Audio", "AudioVideo", "Desktop", "Development", "Education", "Game", "Graphics", "Network",
    "Office", "Science", "Settings", "Social", "System", "Uncategorized", "Utility", "Video",
]  # fmt: skip

S = TypeVar("S", bound=BaseModel)


class NoSettings(BaseModel):
    """The interface of a role that declares no settings (Clan's `interface = {}`)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class RoleConstraint:
    min_machines: int | None = None
    max_machines: int | None = None


@dataclass(frozen=True)
class Constraints:
    max_instances: int | None = None
    roles: Mapping[str, RoleConstraint] = field(default_factory=dict)


# -- what service functions receive ------------------------------------------------------------


@dataclass(frozen=True)
class MachineRef:
    name: str
    roles: tuple[str, ...]


class VarsReader(Protocol):
    """Read access to vars during evaluation: public values only; secrets as host paths."""

    def public(self, generator: str, file: str, machine: str | None = None) -> str: ...

    def secret_path(self, generator: str, file: str) -> str: ...

    def has(self, generator: str, file: str, machine: str | None = None) -> bool: ...


class _NoVars:
    """Vars are not readable while generators are being declared (their values may not exist)."""

    def _refuse(self) -> ClanError:
        return ClanError.single(
            "service-error", "", "vars cannot be read while declaring generators (use them in the role function)"
        )

    def public(self, generator: str, file: str, machine: str | None = None) -> str:
        raise self._refuse()

    def secret_path(self, generator: str, file: str) -> str:
        raise self._refuse()

    def has(self, generator: str, file: str, machine: str | None = None) -> bool:
        raise self._refuse()


NO_VARS: VarsReader = _NoVars()


@dataclass(frozen=True)
class MemberView:
    settings: Any  # that member's effective settings model for this role


class MemberMap(Mapping[str, MemberView]):
    """Members of a role → MemberView, made on access (a role may have thousands of members)."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = settings

    def __getitem__(self, name: str) -> MemberView:
        return MemberView(self._settings[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._settings)

    def __len__(self) -> int:
        return len(self._settings)

    def __contains__(self, name: object) -> bool:
        return name in self._settings


class RoleView:
    """One role of an instance as seen by perInstance/perMachine: members with their settings."""

    def __init__(self, machines: Mapping[str, MemberView], role_only: Callable[[], Any]) -> None:
        self.machines = machines
        self._role_only = role_only

    @property
    def settings(self) -> Any:
        """The role-wide settings without machine or tag settings (deprecated in Clan, R5.9)."""
        return self._role_only()


@dataclass(frozen=True)
class InstanceView:
    roles: Mapping[str, RoleView]


@dataclass
class InstanceContext(Generic[S]):
    """The arguments of a per-instance function (Clan's perInstance, R7.1)."""

    service_name: str
    instance_name: str
    role_name: str
    machine: MachineRef
    roles: Mapping[str, RoleView]
    settings: S
    meta: Mapping[str, Any]
    exports: Mapping[str, ExportValue]
    vars: VarsReader
    _extend: Callable[[dict[str, Any]], S]

    def extend_settings(self, extra: dict[str, Any]) -> S:
        """This machine's settings with one more definition (R5.5); local to this call."""
        return self._extend(extra)

    def mk_exports(self, value: ExportValue) -> ExportMap:
        key = build_scope_key(self.service_name, self.instance_name, self.role_name, self.machine.name)
        return {key: value}


@dataclass
class MachineContext:
    """The arguments of a per-machine function (Clan's perMachine, R8.1). No `settings` (R5.6)."""

    service_name: str
    machine: MachineRef
    instances: Mapping[str, InstanceView]
    meta: Mapping[str, Any]
    exports: Mapping[str, ExportValue]
    vars: VarsReader

    def mk_exports(self, value: ExportValue) -> ExportMap:
        return {build_scope_key(self.service_name, "", "", self.machine.name): value}


@dataclass
class ServiceContext:
    """The arguments of service-level exports: every instance with all roles and members."""

    service_name: str
    instances: Mapping[str, InstanceView]
    meta: Mapping[str, Any]


InstanceFn = Callable[[InstanceContext[Any]], MachineConfig | None]
InstanceExportsFn = Callable[[InstanceContext[Any]], ExportMap]
InstanceGeneratorsFn = Callable[[InstanceContext[Any]], Sequence[Generator]]
MachineFn = Callable[[MachineContext], MachineConfig | None]
MachineExportsFn = Callable[[MachineContext], ExportMap]
MachineGeneratorsFn = Callable[[MachineContext], Sequence[Generator]]
ServiceExportsFn = Callable[[ServiceContext], ExportMap]
ServiceChecksFn = Callable[[ServiceContext], "Sequence[Check]"]


@dataclass
class Role:
    name: str
    interface: type[BaseModel] = NoSettings
    description: str | None = None
    per_instance: InstanceFn | None = None
    exports_fn: InstanceExportsFn | None = None
    generators_fn: InstanceGeneratorsFn | None = None

    def exports(self, fn: InstanceExportsFn) -> InstanceExportsFn:
        """Decorator: what this role exports (computed before any role function runs)."""
        self.exports_fn = fn
        return fn

    def generators(self, fn: InstanceGeneratorsFn) -> InstanceGeneratorsFn:
        """Decorator: the vars generators a member of this role needs."""
        self.generators_fn = fn
        return fn


@dataclass
class Service:
    """A service module's manifest and behaviour (R6.2–R6.4)."""

    name: str
    description: str = "No description"
    readme: str = ""
    categories: Sequence[Category] = ("Uncategorized",)
    constraints: Constraints = field(default_factory=Constraints)
    exports_out: Sequence[str] = ()
    exports_inputs: Sequence[str] = ()
    roles: dict[str, Role] = field(default_factory=dict)
    per_machine_fn: MachineFn | None = None
    machine_exports_fn: MachineExportsFn | None = None
    machine_generators_fn: MachineGeneratorsFn | None = None
    instance_exports_fn: ServiceExportsFn | None = None
    checks_fn: ServiceChecksFn | None = None  # extra `pyclan check` entries (e.g. deprecation warnings)

    def role(
        self, name: str, *, interface: type[BaseModel] = NoSettings, description: str | None = None
    ) -> Callable[[InstanceFn], Role]:
        """Decorator registering a role and its per-instance function; returns the Role."""

        def register(fn: InstanceFn) -> Role:
            if name in self.roles:
                raise ValueError(f"service {self.name!r} defines role {name!r} twice")
            role = Role(name=name, interface=interface, description=description, per_instance=fn)
            self.roles[name] = role
            return role

        return register

    def per_machine(self, fn: MachineFn) -> MachineFn:
        self.per_machine_fn = fn
        return fn

    def machine_exports(self, fn: MachineExportsFn) -> MachineExportsFn:
        self.machine_exports_fn = fn
        return fn

    def machine_generators(self, fn: MachineGeneratorsFn) -> MachineGeneratorsFn:
        self.machine_generators_fn = fn
        return fn

    def instance_exports(self, fn: ServiceExportsFn) -> ServiceExportsFn:
        self.instance_exports_fn = fn
        return fn

    def checks(self, fn: ServiceChecksFn) -> ServiceChecksFn:
        """Decorator: checks of the service's own, from every instance's members and settings."""
        self.checks_fn = fn
        return fn

    def manifest_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "readme": self.readme,
            "categories": list(self.categories),
            "constraints": {
                "maxInstances": self.constraints.max_instances,
                "roles": {
                    r: {"minMachines": c.min_machines, "maxMachines": c.max_machines}
                    for r, c in self.constraints.roles.items()
                },
            },
            "exports": {"out": list(self.exports_out), "inputs": list(self.exports_inputs)},
        }
