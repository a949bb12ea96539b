"""internet: how to reach machines directly over the network (Clan's `internet`).

Each member says where it can be reached (`host`, plus optional SSH `user`, `port` and
`jumphosts`) and exports it as a `peer`. Deploy and other services read it back with
`machine_host(exports, machine)` / `machine_target(exports, machine)`. Every instance also
exports `networking.priority = 2000`, as in Clan: this network is tried first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pyclan.services import InstanceContext, Service, ServiceContext
from pyclan.services.exports import ExportMap, ExportValue, build_scope_key, parse_scope

SERVICE_NAME = "internet"
PRIORITY = 2000
DEFAULT_PRIORITY = 1000  # the built-in `networking.priority` default

# No whitespace or control characters, and no leading '-' (ssh would read it as an option)
Host = Annotated[str, StringConstraints(pattern=r"^[^\s\x00-\x1f\x7f-][^\s\x00-\x1f\x7f]*$", min_length=1)]
HostOrEmpty = Annotated[str, StringConstraints(pattern=r"^([^\s\x00-\x1f\x7f-][^\s\x00-\x1f\x7f]*)?$")]

service = Service(
    SERVICE_NAME,
    description=(
        "Part of the clan networking abstraction to define how to reach machines from outside the "
        "clan network over the internet, if defined has the highest priority"
    ),
    readme="Declares each member's address (and SSH user/port/jump hosts) for deploy and other services.",
    categories=["Network"],
    exports_out=("peer", "networking"),
)


class Internet(BaseModel):
    """Settings of the `default` role (usually set per machine)."""

    model_config = ConfigDict(extra="forbid")

    host: HostOrEmpty = Field(
        default="",
        description="IP address or host name (domain) of the machine; empty (Clan's default): no address",
        examples=["server1.example.com"],
    )
    user: Host | None = Field(default=None, description="SSH user for deploy; null: root")
    port: int = Field(default=22, ge=0, le=65535, description="SSH port")
    jumphosts: list[Host] = Field(
        default=[], description="Jump hosts to connect through, in order (ssh -J)"
    )


@service.role("default", interface=Internet, description="Machines reachable at a known address")
def default(ctx: InstanceContext[Internet]) -> None:
    return None  # nothing on the host: this service only tells others how to reach it


@default.exports
def peer_exports(ctx: InstanceContext[Internet]) -> ExportMap:
    """Clan's `peer` interface: `hosts` (plain values), `port`, `user`, `SSHOptions` (`-J host` per jump host)."""
    s = ctx.settings
    jumps = [f"-J {j}" for j in s.jumphosts]
    return ctx.mk_exports({"peer": {"hosts": [{"plain": s.host}], "user": s.user, "port": s.port, "SSHOptions": jumps}})


@service.instance_exports
def networking_priority(ctx: ServiceContext) -> ExportMap:
    return {
        build_scope_key(ctx.service_name, instance): {"networking": {"priority": PRIORITY}}
        for instance in ctx.instances
    }


# -- reading it back (deploy, other services) -------------------------------------------------------


@dataclass(frozen=True)
class InternetTarget:
    """Where one machine is reachable according to an `internet` instance."""

    host: str
    instance: str
    user: str | None = None
    port: int = 22
    jumphosts: tuple[str, ...] = field(default_factory=tuple)
    priority: int = PRIORITY


def _priority(exports: Mapping[str, ExportValue], service: str, instance: str) -> int:
    value: Any = exports.get(build_scope_key(service, instance), {}).get("networking")
    if isinstance(value, Mapping) and isinstance(value.get("priority"), int):
        return int(value["priority"])
    return DEFAULT_PRIORITY


def machine_targets(exports: Mapping[str, ExportValue], machine: str) -> list[InternetTarget]:
    """Every address exported for `machine` by `internet` instances, best first.

    Best = highest `networking.priority` of the instance, then instance name.
    """
    found: list[InternetTarget] = []
    for key, value in exports.items():
        if not key.startswith(f"{SERVICE_NAME}:") or not key.endswith(f":{machine}"):
            continue
        scope = parse_scope(key)
        if scope.machine != machine or not scope.instance:
            continue
        peer = value.get("peer")
        if not isinstance(peer, Mapping):
            continue
        hosts = peer.get("hosts")
        first = hosts[0] if isinstance(hosts, list) and hosts else None
        plain = first.get("plain") if isinstance(first, Mapping) else None
        if not isinstance(plain, str) or not plain:
            continue
        port = peer.get("port")
        user = peer.get("user")
        options = peer.get("SSHOptions")
        jumps = [o.split(None, 1)[1] for o in options if isinstance(o, str) and o.startswith("-J ")] if isinstance(
            options, list
        ) else []
        found.append(
            InternetTarget(
                host=plain,
                instance=scope.instance,
                user=user if isinstance(user, str) else None,
                port=port if isinstance(port, int) else 22,
                jumphosts=tuple(jumps),
                priority=_priority(exports, scope.service, scope.instance),
            )
        )
    found.sort(key=lambda t: (-t.priority, t.instance))
    return found


def machine_target(exports: Mapping[str, ExportValue], machine: str) -> InternetTarget | None:
    """The best address of `machine` (see `machine_targets`), or None if no instance covers it."""
    targets = machine_targets(exports, machine)
    return targets[0] if targets else None


def machine_host(exports: Mapping[str, ExportValue], machine: str) -> str | None:
    """The host name or IP address the `internet` service exports for `machine`, or None."""
    target = machine_target(exports, machine)
    return target.host if target is not None else None
