"""A test-only service declaring the generators of Clan's `checks/service-dummy-test` (the clan in
`../shared/reference/clan-sops-vars/`): `dummy-generator` on every machine, `new-service` on peer1.
Copied into test clans as services/clantest.py (module.input = "self")."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from pydantic import BaseModel

from pyclan.config.generators import Generator, GeneratorInput, VarFile
from pyclan.config.machine_config import MachineConfig
from pyclan.services.service import InstanceContext, Service

service = Service("clantest", description="Clan's service-dummy-test generators")


class Settings(BaseModel):
    new_service: bool = False


def make_dummy(inp: GeneratorInput) -> Mapping[str, bytes | str]:
    return {"generated-password": f"{secrets.randbelow(40000)}\n", "host-id": f"{secrets.randbelow(40000)}\n"}


def make_new(inp: GeneratorInput) -> Mapping[str, bytes | str]:
    return {"a-secret": secrets.token_hex(8), "not-a-secret": "not-a-secret"}


@service.role("default", interface=Settings, description="Every machine of the dummy test")
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    return MachineConfig()


@default.generators
def default_generators(ctx: InstanceContext[Settings]) -> list[Generator]:
    gens = [Generator(
        "dummy-generator",
        files={"generated-password": VarFile(), "host-id": VarFile(secret=False)},
        run=make_dummy,
    )]
    if ctx.settings.new_service:
        gens.append(Generator(
            "new-service",
            files={"a-secret": VarFile(owner="nobody", group="users", mode="0644"),
                   "not-a-secret": VarFile(secret=False)},
            run=make_new,
        ))
    return gens
