"""hello-world: Clan's minimal example service, rendered for Debian.

Roles `morning` and `evening` each write their greeting to `/etc/hello-world/<instance>`.
Every member gets a `greet-world` command (perMachine) that prints each greeting followed by
the machine's name, like Clan's `greet-world` prints "Good morning World! I'm jon".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pyclan.services import InstanceContext, MachineConfig, MachineContext, Service
from pyclan.services.library._common import sh_quote

GREETINGS_DIR = "/etc/hello-world"
GREET_WORLD = "/usr/local/bin/greet-world"

service = Service(
    "hello-world",
    description="Minimal example service that greets the world",
    readme=(
        "Each `morning` or `evening` member writes `<greeting> World!` to /etc/hello-world/<instance>; "
        "`greet-world` prints every greeting of the machine followed by \"I'm <machine>\"."
    ),
    categories=["Development"],
)


class Morning(BaseModel):
    """Settings of a morning greeting machine."""

    model_config = ConfigDict(extra="forbid")

    greeting: str = Field(default="Good morning", description="The greeting to use")


class Evening(BaseModel):
    """Settings of an evening greeting machine."""

    model_config = ConfigDict(extra="forbid")

    greeting: str = Field(default="Good evening", description="The greeting to use")


def _greeting_file(ctx: InstanceContext[Morning] | InstanceContext[Evening]) -> MachineConfig:
    # One file per instance: a machine may take part in several hello-world instances.
    return MachineConfig().file(f"{GREETINGS_DIR}/{ctx.instance_name}", f"{ctx.settings.greeting} World!\n")


@service.role("morning", interface=Morning, description="A morning greeting machine")
def morning(ctx: InstanceContext[Morning]) -> MachineConfig:
    return _greeting_file(ctx)


@service.role("evening", interface=Evening, description="An evening greeting machine")
def evening(ctx: InstanceContext[Evening]) -> MachineConfig:
    return _greeting_file(ctx)


@service.per_machine
def greet_world(ctx: MachineContext) -> MachineConfig:
    script = (
        "#!/bin/sh\n"
        "# Prints every hello-world greeting of this machine (managed by pyclan).\n"
        "set -eu\n"
        f"for f in {GREETINGS_DIR}/*; do\n"
        '  [ -f "$f" ] || continue\n'
        f"  printf '%s I'\\''m %s\\n' \"$(cat \"$f\")\" {sh_quote(ctx.machine.name)}\n"
        "done\n"
    )
    return MachineConfig().file(GREET_WORLD, script, mode="0755")
