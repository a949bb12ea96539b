"""The service-module API: everything a service author imports.

`from pyclan.services import Service, InstanceContext, MachineConfig, Generator, mk_default`.
Services import from here, never from the engine's packages (`evaluate`, `settings`, `config`),
so those can be reorganised without touching a service.
"""

from pyclan.config.generators import Generator, GeneratorInput, Prompt, VarFile
from pyclan.config.machine_config import MachineConfig
from pyclan.services.constraints import Check
from pyclan.services.service import (
    Constraints,
    InstanceContext,
    InstanceView,
    MachineContext,
    NoSettings,
    Role,
    RoleConstraint,
    RoleView,
    Service,
    ServiceContext,
    VarsReader,
)
from pyclan.settings.overrides import (
    mk_after,
    mk_before,
    mk_default,
    mk_force,
    mk_if,
    mk_merge,
    mk_option_default,
    mk_order,
    mk_override,
)

__all__ = [
    "Check",
    "Constraints",
    "Generator",
    "GeneratorInput",
    "InstanceContext",
    "InstanceView",
    "MachineConfig",
    "MachineContext",
    "NoSettings",
    "Prompt",
    "Role",
    "RoleConstraint",
    "RoleView",
    "Service",
    "ServiceContext",
    "VarFile",
    "VarsReader",
    "mk_after",
    "mk_before",
    "mk_default",
    "mk_force",
    "mk_if",
    "mk_merge",
    "mk_option_default",
    "mk_order",
    "mk_override",
]
