"""A small clan for the inventory-write tests: hand-written clan.toml with comments, a service of its own."""

from __future__ import annotations

import textwrap
from pathlib import Path

TOML = """\
# The fleet (hand-written; comments must survive every write)
[meta]
name = "fleet"  # the clan's name
domain = "fleet"

[machines.web]
tags = ["server"]  # keep this comment
# deploy.targetHost = "root@web.example.org"

[machines.db]
tags = ["server", "backup"]

[machines.laptop]
description = "Jon's laptop"

[instances.hello]
module.name = "hello-world"  # the greeting service
roles.morning.tags = ["server"]
roles.morning.settings.greeting = "Good morning"

[instances.demo]
module.name = "demo"
module.input = "self"

[instances.demo.roles.server.settings]
port = 8080  # the port
"""

SERVICE = '''\
"""A service of this clan's own with typed settings."""

from pydantic import BaseModel, ConfigDict, Field

from pyclan.services import InstanceContext, MachineConfig, Service

service = Service("demo", description="A demo service")


class Server(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(default=80, ge=1, le=65535)
    names: list[str] = Field(default_factory=list)
    tls: dict[str, str] = Field(default_factory=dict)


class Client(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server: str  # required: no default


@service.role("server", interface=Server, description="Serves")
def server(ctx: InstanceContext[Server]) -> MachineConfig:
    return MachineConfig().file("/etc/demo", f"{ctx.settings.port}\\n")


@service.role("client", interface=Client, description="Connects")
def client(ctx: InstanceContext[Client]) -> MachineConfig:
    return MachineConfig().file("/etc/demo-client", ctx.settings.server + "\\n")
'''


def make_clan(root: Path, toml: str = TOML, inventory_json: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if toml:
        (root / "clan.toml").write_text(toml)
    if inventory_json is not None:
        (root / "inventory.json").write_text(inventory_json)
    (root / "services").mkdir(exist_ok=True)
    (root / "services" / "demo.py").write_text(textwrap.dedent(SERVICE))
    return root


def files_of(root: Path) -> dict[str, bytes]:
    """Every inventory file's bytes (to assert a refused write changed nothing)."""
    return {name: (root / name).read_bytes() for name in ("clan.toml", "inventory.json") if (root / name).exists()}


# The same clan written in other ways: dotted keys under [machines] / [instances], and split
# between clan.toml and inventory.json (the demo instance and the laptop only in inventory.json).
TOML_DOTTED = """\
meta = { name = "fleet", domain = "fleet" }  # the clan's name

[machines]
web.tags = ["server"]  # keep this comment
db.tags = ["server", "backup"]
laptop = { description = "Jon's laptop" }

[instances]
hello.module.name = "hello-world"  # the greeting service
hello.roles.morning.tags = ["server"]
hello.roles.morning.settings.greeting = "Good morning"
demo.module = { name = "demo", input = "self" }
demo.roles.server.settings.port = 8080  # the port
"""

TOML_SPLIT = TOML.split("[machines.laptop]")[0] + TOML[TOML.index("[instances.hello]"):TOML.index("[instances.demo]")]
JSON_SPLIT = """{
  "machines": {"laptop": {"description": "Jon's laptop"}},
  "instances": {"demo": {"module": {"name": "demo", "input": "self"},
                         "roles": {"server": {"settings": {"port": 8080}}}}}
}
"""

VARIANTS: dict[str, tuple[str, str | None]] = {
    "headers": (TOML, None),
    "dotted": (TOML_DOTTED, None),
    "split": (TOML_SPLIT, JSON_SPLIT),
}
