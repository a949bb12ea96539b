"""API of the clan as a whole: create one, its details, and `pyclan check`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyclan.api import register
from pyclan.api.common import CheckResult, Notice, notices, open_flake
from pyclan.api.writes import InventoryWrite
from pyclan.errors import ClanError, Problem


@dataclass(frozen=True)
class CreatedClan:
    """A starter clan that `init_clan` wrote."""

    name: str
    path: str


@dataclass(frozen=True)
class ClanDetails:
    """The clan's `meta`: name, description, icon and domain (the effective one)."""

    name: str
    domain: str
    description: str | None = None
    icon: str | None = None
    tld: str | None = None


@dataclass(frozen=True)
class CheckReport:
    """What `pyclan check` found: ok unless a check is an error."""

    ok: bool
    machines: int
    instances: int
    checks: list[CheckResult] = field(default_factory=list)
    warnings: list[Notice] = field(default_factory=list)
    errors: list[Problem] = field(default_factory=list)  # every problem found, failed constraints included


STARTER_TOML = """\
# The inventory of this clan: machines, and the service instances that run on them.
# Reference: `pyclan services list`, `pyclan services show NAME`; check with `pyclan check`.

[meta]
name = "{name}"
domain = "{domain}"

[machines.my-machine]
tags = ["server"]
# deploy.targetHost = "root@my-machine.example.org"

[instances.hello]
module.name = "hello-world"
roles.morning.tags = ["server"]
roles.morning.settings.greeting = "Good morning"

[instances.greeter]
module.name = "greeter"
module.input = "self"
roles.default.machines.my-machine.settings.message = "Welcome to {name}"
"""

STARTER_SERVICE = '''\
"""A service of this clan's own (module.input = "self"): writes /etc/motd."""

from pydantic import BaseModel

from pyclan.services import InstanceContext, MachineConfig, Service

service = Service("greeter", description="Writes a message of the day")


class Settings(BaseModel):
    message: str = "Hello"


@service.role("default", interface=Settings, description="Machines that greet their users")
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    return MachineConfig().file("/etc/motd", ctx.settings.message + "\\n")
'''


@register
def init_clan(directory: str = ".", name: str | None = None, domain: str = "clan") -> CreatedClan:
    """Create a starter clan; refuses to overwrite an existing inventory."""
    target = Path(directory).resolve()
    clan_name = name or re.sub(r"[^a-zA-Z0-9_-]", "-", target.name) or "my-clan"
    for existing in ("clan.toml", "inventory.json"):
        if (target / existing).exists():
            raise ClanError.single(
                "usage-error", str(target / existing), "a clan already exists here", hint="choose another directory"
            )
    if not re.fullmatch(r"[a-zA-Z0-9_-]*", clan_name):
        raise ClanError.single("usage-error", "--name", f"invalid clan name {clan_name!r}", hint="use [a-zA-Z0-9_-]")
    (target / "services").mkdir(parents=True, exist_ok=True)
    (target / "clan.toml").write_text(STARTER_TOML.format(name=clan_name, domain=domain))
    (target / "services" / "greeter.py").write_text(STARTER_SERVICE)
    gitignore = target / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text("__pycache__/\n.pyclan/\n")
    return CreatedClan(name=clan_name, path=str(target))


@register
def get_clan_details(flake: str | None = None) -> ClanDetails:
    """The clan's name, description and domain (`pyclan show`)."""
    meta = open_flake(flake).loaded.inventory.meta
    return ClanDetails(
        name=meta.name, domain=meta.effective_domain, description=meta.description, icon=meta.icon, tld=meta.tld
    )


@register
def check_clan(flake: str | None = None, input_overrides: dict[str, str] | None = None) -> CheckReport:
    """Everything `pyclan check` verifies without a host or the admin key: inventory, services,
    settings, vars graph, configs, builds and constraints; every problem at once in `errors`."""
    from pyclan.api.common import with_positions
    from pyclan.check import open_for_check, run_check

    overrides = {name: Path(path).resolve() for name, path in (input_overrides or {}).items()}
    result = run_check(open_for_check(Path(flake) if flake else None, overrides))
    resolved = result.resolved
    checks = [CheckResult(c.id, c.message, c.severity) for c in resolved.checks]
    errors = with_positions(result.problems, flake)
    return CheckReport(
        ok=result.ok,
        machines=len(resolved.inventory.machines),
        instances=len(resolved.instances),
        checks=checks,
        warnings=notices(result.warnings),
        errors=errors,
    )


@register
def set_meta(
    name: str | None = None,
    description: str | None = None,
    domain: str | None = None,
    icon: str | None = None,
    expected_hash: str | None = None,
    flake: str | None = None,
) -> InventoryWrite:
    """Change the clan's `meta` (None: unchanged; "" removes description, domain or icon)."""
    from pyclan.api.writes import write

    def change(plan: Any) -> None:
        if name is not None:
            plan.set(("meta", "name"), name)
        for key, value in (("description", description), ("domain", domain), ("icon", icon)):
            if value == "":
                plan.delete(("meta", key))
            elif value is not None:
                plan.set(("meta", key), value)

    return write(flake, "meta set", change, expected_hash)
