"""The service-module API and the registry that finds service modules.

Service authors import from here: `from pyclan.services import Service, InstanceContext, MachineConfig`.
"""

from pyclan.config.machine_config import MachineConfig
from pyclan.services.api import (
    Constraints,
    InstanceContext,
    MachineContext,
    NoSettings,
    Role,
    RoleConstraint,
    Service,
    ServiceContext,
)
from pyclan.vars.model import Generator, GeneratorInput, Prompt, VarFile

__all__ = [
    "Constraints",
    "Generator",
    "GeneratorInput",
    "InstanceContext",
    "MachineConfig",
    "MachineContext",
    "NoSettings",
    "Prompt",
    "Role",
    "RoleConstraint",
    "Service",
    "ServiceContext",
    "VarFile",
]
