"""The library functions that the CLI and the JSON API share (Clan's `@API.register`).

Each function is registered once, takes JSON-able arguments (`flake` is the clan directory;
None means the current one) and returns JSON-able data. `call(name, args)` wraps results as
`{"status": "success", "data": …}` or `{"status": "error", "errors": [...]}` for tools.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from pyclan.clan import Clan, open_clan
from pyclan.errors import ClanError, Problem

F = TypeVar("F", bound=Callable[..., Any])
REGISTRY: dict[str, Callable[..., Any]] = {}


def register(fn: F) -> F:
    if fn.__name__ in REGISTRY:
        raise RuntimeError(f"Function {fn.__name__} already registered")
    REGISTRY[fn.__name__] = fn
    return fn


def _clan(flake: str | None) -> Clan:
    return open_clan(Path(flake) if flake else None)


# -- clan ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedClan:
    name: str
    path: Path


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
def init_clan(directory: str | Path, name: str | None = None, domain: str = "clan") -> CreatedClan:
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
    return CreatedClan(name=clan_name, path=target)


@register
def get_clan_details(flake: str | None = None) -> dict[str, Any]:
    return _clan(flake).loaded.inventory.meta.to_json()


@register
def check_clan(flake: str | None = None) -> dict[str, Any]:
    """Everything `pyclan check` verifies: inventory, services, settings, configs, constraints."""
    clan = _clan(flake)
    resolved = clan.resolved
    clan.evaluator.configs()
    errors = [c for c in resolved.checks if c.severity == "error"]
    return {
        "ok": not errors,
        "machines": len(resolved.machine_names),
        "instances": len(resolved.instances),
        "checks": [c.to_json() for c in resolved.checks],
        "warnings": list(resolved.warnings),
    }


# -- machines --------------------------------------------------------------------------------


@register
def list_machines(tags: list[str] | None = None, flake: str | None = None) -> dict[str, Any]:
    """Machines carrying every tag in `tags` (all machines without tags), with effective tags."""
    clan = _clan(flake)
    from pyclan.inventory.tags import effective_tags

    inv = clan.loaded.inventory
    eff = effective_tags(inv)
    wanted = set(tags or [])
    out: dict[str, Any] = {}
    for name in sorted(inv.machines):
        if wanted <= set(eff.get(name, [])):
            data = inv.machines[name].model_dump(mode="json")
            data["name"] = data["name"] or name
            data["tags"] = eff.get(name, [])
            out[name] = data
    return out


@register
def create_machine(
    name: str,
    tags: list[str] | None = None,
    target_host: str | None = None,
    description: str | None = None,
    flake: str | None = None,
) -> dict[str, Any]:
    """Add a machine to the inventory (clan.toml, comments kept; else inventory.json)."""
    from pyclan.inventory.write import create_machine as create

    clan = _clan(flake)
    return {"machine": name, "file": create(clan.dir, name, tags, target_host, description)}


@register
def delete_machine(name: str, flake: str | None = None) -> dict[str, Any]:
    """Remove a machine, its vars and its machine key; refused while a role still names it."""
    from pyclan.inventory.write import delete_machine as delete

    clan = _clan(flake)
    return {"machine": name, "removed": delete(clan.dir, name)}


@register
def get_machine_config(machine: str, flake: str | None = None) -> dict[str, Any]:
    clan = _clan(flake)
    return clan.evaluator.config(machine).model_dump(mode="json")


# -- services --------------------------------------------------------------------------------


@register
def list_service_modules(flake: str | None = None) -> list[dict[str, Any]]:
    clan = _clan(flake)
    out: list[dict[str, Any]] = []
    for entry in clan.registry.entries():
        try:
            service = clan.registry.resolve(entry.name, entry.input, f"services.{entry.name}")
        except ClanError as err:
            out.append(
                {
                    "name": entry.name,
                    "input": entry.input,
                    "origin": entry.origin,
                    "roles": [],
                    "description": "(fails to load: " + err.problems[0].message + ")",
                }
            )
            continue
        out.append(
            {
                "name": entry.name,
                "input": entry.input,
                "origin": entry.origin,
                "roles": sorted(service.roles),
                "description": service.description,
                "categories": list(service.categories),
            }
        )
    return out


@register
def get_service_module(name: str, input: str | None = None, flake: str | None = None) -> dict[str, Any]:
    """Manifest, roles, descriptions and each role's settings JSON Schema."""
    clan = _clan(flake)
    service = clan.registry.resolve(name, input, f"services.{name}")
    from pyclan.evaluate.settings import settings_schema

    return {
        "name": name,
        "input": input,
        "manifest": service.manifest_json(),
        "roles": {
            r: {"description": role.description, "schema": settings_schema(role.interface)}
            for r, role in sorted(service.roles.items())
        },
        "perMachine": service.per_machine_fn is not None,
    }


# -- inventory -------------------------------------------------------------------------------


@register
def resolve_inventory(flake: str | None = None) -> dict[str, Any]:
    return _clan(flake).resolved.to_json()


@register
def inventory_schema() -> dict[str, Any]:
    from pyclan.inventory.schema import inventory_json_schema

    return inventory_json_schema()


# -- vars and inputs ------------------------------------------------------------------------


@register
def run_generators(
    machines: list[str] | None = None,
    generators: list[str] | None = None,
    regenerate: bool = False,
    prompt_values: dict[str, dict[str, str]] | None = None,
    flake: str | None = None,
) -> dict[str, Any]:
    """`pyclan vars generate`: run missing/outdated generators (prompts answered by `prompt_values`)."""
    from pyclan.vars.api import generate

    return generate(_clan(flake), machines, generators, regenerate, prompt_values).to_json()


@register
def check_vars(machines: list[str] | None = None, flake: str | None = None) -> dict[str, Any]:
    """`pyclan vars check`: what is missing, outdated, undecryptable or mis-encrypted."""
    from pyclan.vars.api import check

    return check(_clan(flake), machines).to_json()


@register
def list_vars(machine: str, flake: str | None = None) -> dict[str, str]:
    """`pyclan vars list`: `<generator>/<file>` → value (secrets masked)."""
    from pyclan.vars.api import list_machine_vars

    return {e.id: e.shown() for e in list_machine_vars(_clan(flake), machine)}


@register
def import_clan_vars(dry_run: bool = False, flake: str | None = None) -> dict[str, Any]:
    """`pyclan vars import --from-clan`: take over Clan's sops-encrypted vars (all or nothing)."""
    from pyclan.vars.api import import_from_clan

    return import_from_clan(_clan(flake), dry_run=dry_run).to_json()


@register
def list_inputs(flake: str | None = None) -> dict[str, Any]:
    """`pyclan inputs list`: declared inputs, their locked revisions and services."""
    from pyclan.inputs import InputSet
    from pyclan.inputs.listing import describe_inputs

    clan = _clan(flake)
    return describe_inputs(InputSet(clan.dir, clan.loaded.inventory.inputs, clan.input_overrides))


# -- networks --------------------------------------------------------------------------------


@register
def list_networks(flake: str | None = None) -> list[Any]:
    """The clan's networks (services exporting `networking`), best priority first, with their members."""
    from pyclan.deploy import networks

    return list(networks.summaries(networks.clan_networks(_clan(flake))))


@register
def ping_machines(
    machines: list[str] | None = None, network: str | None = None, timeout: float = 2.0, flake: str | None = None
) -> list[Any]:
    """Probe each machine's SSH port over each of its networks (or only `network`): reachable, latency."""
    from pyclan.deploy import networks

    return list(networks.ping(_clan(flake), machines or [], network, timeout))


@register
def network_overview(timeout: float = 2.0, flake: str | None = None) -> Any:
    """Machines × networks: whether each machine answers over each network it is in, and why not."""
    from pyclan.deploy import networks

    return networks.overview(_clan(flake), timeout)


# -- the JSON envelope -------------------------------------------------------------------------


def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call a registered function with JSON arguments; never raises for user errors."""
    fn = REGISTRY.get(name)
    if fn is None:
        return _error([Problem("usage-error", name, f"no API function named {name!r}")])
    try:
        inspect.signature(fn).bind(**args)
    except TypeError as exc:
        return _error([Problem("usage-error", name, str(exc))])
    try:
        data = fn(**args)
    except ClanError as err:
        return _error(err.problems)
    return {"status": "success", "op": name, "data": to_jsonable(data)}


def _error(problems: list[Problem]) -> dict[str, Any]:
    return {"status": "error", "errors": [p.to_json() for p in problems]}


def to_jsonable(value: Any) -> Any:
    """Dataclasses → dicts without None fields, Paths → str (Clan's serde rules, R14.2)."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: to_jsonable(v) for k, v in vars(value).items() if v is not None and not k.startswith("_")}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value


def describe() -> dict[str, Any]:
    """Each function's arguments and return type (for tools generating clients)."""
    out = {}
    for name, fn in sorted(REGISTRY.items()):
        hints = get_type_hints(fn)
        out[name] = {
            "doc": inspect.getdoc(fn) or "",
            "arguments": {p: str(hints.get(p, "Any")) for p in inspect.signature(fn).parameters},
            "return": str(hints.get("return", "Any")),
        }
    return out
