"""zerotier: a ZeroTier VPN with one controller, optional moons and any number of peers (Clan's `zerotier`).

Vars use Clan's generators, all shared (so an existing Clan clan's vars map onto them):
`zerotier-identity-<machine>` (`identity-secret`), `zerotier-network-<instance>` (`network-id`: the
controller's node id plus 24 random bits, as ZeroTier's controller API makes it; declared by every
member) and `zerotier-ip-<machine>-<instance>` (`ip`: the member's RFC4193 address, whose last 5 bytes
are its node id). The controller of an instance owns the network and accepts every member (plus
`allowedIps`/`allowedIds`); every member joins it and orbits the instance's moons (peers also
`orbitMoons`). pyclan adds the seed's `ipRanges` (peers) and `dynamicIp.enable` (controller).

Rendering for Debian: Debian bookworm has no `zerotier-one` package, so nothing is installed. The
service renders the networks to join and the controller's network database under
`/etc/zerotier/pyclan/`, and an activation hook copies them and the identity into
`/var/lib/zerotier-one` (where ZeroTier's own package keeps its state) and restarts
`zerotier-one.service` when something changed and the daemon is installed. Install zerotier-one
from ZeroTier's apt repository to make it live.

Identities are made in Python (no `zerotier-idtool`), in `_zerotier_identity.py`; the activation
hook is the POSIX-sh file `_zerotier_apply.sh` next to this module.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyclan.errors import ClanError
from pyclan.services import (
    Constraints,
    Generator,
    GeneratorInput,
    InstanceContext,
    MachineConfig,
    MachineContext,
    RoleConstraint,
    RoleView,
    Service,
    ServiceContext,
    VarFile,
    VarsReader,
)
from pyclan.services.exports import ExportMap, build_scope_key
from pyclan.services.library._common import HOOK_STATE_DIR, SYSTEMD_BOOTED, sh_quote
from pyclan.services.library._zerotier_identity import (
    ZeroTierIdentity,
    generate_identity,
    node_id_of,
    rfc4193_address,
)

SERVICE_NAME = "zerotier"
ZT_HOME = "/var/lib/zerotier-one"
SRC_DIR = "/etc/zerotier/pyclan"  # what the activation hook installs from
NETWORKING_PRIORITY = 900  # Clan: below `internet` (2000) and the default (1000)

# ==================================================================================================
# The service
# ==================================================================================================

service = Service(
    SERVICE_NAME,
    description="ZeroTier Mesh VPN Service for secure P2P networking between machines",
    readme=(
        "A ZeroTier network: the controller creates and authorises it, peers join it, moons relay. "
        "Renders identities and network configuration for zerotier-one (not packaged by Debian)."
    ),
    categories=["Network"],
    constraints=Constraints(
        roles={"controller": RoleConstraint(min_machines=1, max_machines=1), "moon": RoleConstraint(max_machines=4)}
    ),
    exports_out=("networking", "peer"),
)

_HEX10 = re.compile(r"^[0-9a-f]{10}$")


def _node_ids(value: list[str]) -> list[str]:
    for item in value:
        if not _HEX10.match(item):
            raise ValueError(f"{item!r} is not a ZeroTier node id (10 lower-case hex digits, e.g. deadbeef00)")
    return value


class PeerSettings(BaseModel):
    """Settings of the `peer` role."""

    model_config = ConfigDict(extra="forbid")

    orbitMoons: list[str] = Field(  # Clan's option
        default=[],
        description=(
            "External moon ids to orbit (moons outside the inventory); moons of the instance's `moon` role are "
            "orbited automatically"
        ),
        examples=[["deadbeef00"]],
    )
    ipRanges: list[str] = Field(  # pyclan addition (the seed's example)
        default=[],
        description=(
            "IP ranges (CIDR, e.g. 10.147.17.0/24) this peer wants in the network: the controller adds each as a "
            'managed route and an address pool. "all" stands for the instance\'s default IPv4 range '
            "(one /24 of 172.16.0.0/12, chosen by the instance name)."
        ),
        examples=[["all"], ["10.147.17.0/24"]],
    )

    @field_validator("ipRanges")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for item in value:
            if item != "all":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(f'{item!r} is neither "all" nor an IP range in CIDR notation') from None
        return value

    _moons = field_validator("orbitMoons")(_node_ids)


class DynamicIp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool = Field(
        default=False,
        description="Assign IPv4 addresses to members automatically from the peers' ipRanges (ZeroTier v4AssignMode)",
    )


class ControllerSettings(BaseModel):
    """Settings of the `controller` role."""

    model_config = ConfigDict(extra="forbid")

    allowedIps: list[str] = Field(  # Clan's option
        default=[],
        description="Extra machines (e.g. outside the clan) to accept, by their ZeroTier IPv6 (RFC4193) address",
        examples=[["fd5d:bbe3:cbc5:fe6b:f699:935d:bbe3:cbc5"]],
    )
    allowedIds: list[str] = Field(  # Clan's option
        default=[],
        description="Extra machines to accept by their ZeroTier node id (10 hex digits, `zerotier-cli info`)",
        examples=[["deadbeef00", "abc1234567"]],
    )
    public: bool = Field(  # Clan's option
        default=False, description="A public network: everyone may join without being accepted by the controller"
    )
    dynamicIp: DynamicIp = Field(default=DynamicIp(), description="IPv4 assignment (pyclan addition)")

    @field_validator("allowedIps")
    @classmethod
    def _allowed(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                node_id_of(item)
            except ValueError:
                raise ValueError(f"{item!r} is neither a ZeroTier IPv6 address nor a 10-digit node id") from None
        return value

    _ids = field_validator("allowedIds")(_node_ids)


class MoonSettings(BaseModel):
    """Settings of the `moon` role."""

    model_config = ConfigDict(extra="forbid")

    stableEndpoints: list[str] = Field(  # Clan's option (no default there: its empty value [] applies, R5.3.9)
        default=[],
        description=(
            "Make this machine a moon, reachable at these stable endpoints (IP or IP/port); peers of the "
            "instance orbit it"
        ),
        examples=[["1.2.3.4", "10.0.0.3/9993", "2001:abcd:abcd::3/9993"]],
    )


# -- generators (Clan's names, all shared: `vars/shared/…`) ------------------------------------------


def identity_generator_name(machine: str) -> str:
    return f"zerotier-identity-{machine}"


def network_generator_name(instance: str) -> str:
    return f"zerotier-network-{instance}"


def ip_generator_name(machine: str, instance: str) -> str:
    return f"zerotier-ip-{machine}-{instance}"


IDENTITY_SECRET = "identity-secret"
NETWORK_ID = "network-id"
IP = "ip"


@dataclass(frozen=True)
class IdentityRun:
    """Generator run: a new ZeroTier identity (`identity.secret` format: address:0:public:private)."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        return {IDENTITY_SECRET: generate_identity().secret_string()}


def _identity_of(inp: GeneratorInput, generator: str) -> ZeroTierIdentity:
    return ZeroTierIdentity.parse(inp.dependencies[generator][IDENTITY_SECRET].decode())


@dataclass(frozen=True)
class NetworkRun:
    """Generator run: the network id, the controller's node id + 24 random bits (never all zero)."""

    controller_identity: str  # the generator holding the controller's identity

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        node = _identity_of(inp, self.controller_identity).address
        suffix = "000000"
        while suffix == "000000":
            suffix = secrets.token_hex(3)
        return {NETWORK_ID: node + suffix}


@dataclass(frozen=True)
class IpRun:
    """Generator run: the member's RFC4193 address in the network (pure computation, as in Clan)."""

    identity: str
    network: str

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        node = _identity_of(inp, self.identity).address
        network = inp.dependencies[self.network][NETWORK_ID].decode().strip()
        return {IP: rfc4193_address(network, node).compressed}


def identity_generator(machine: str) -> Generator:
    return Generator(
        name=identity_generator_name(machine),
        share=True,
        files={IDENTITY_SECRET: VarFile(secret=True)},
        run=IdentityRun(),
    )


def network_generator(instance: str, controller: str) -> Generator:
    dep = identity_generator_name(controller)
    return Generator(
        name=network_generator_name(instance),
        share=True,
        files={NETWORK_ID: VarFile(secret=False, deploy=False)},
        dependencies=(dep,),
        run=NetworkRun(dep),
    )


def ip_generator(machine: str, instance: str) -> Generator:
    identity, network = identity_generator_name(machine), network_generator_name(instance)
    return Generator(
        name=ip_generator_name(machine, instance),
        share=True,
        files={IP: VarFile(secret=False, deploy=False)},
        dependencies=(identity, network),
        run=IpRun(identity, network),
    )


def _controller(roles: Mapping[str, RoleView]) -> str | None:
    """The instance's controller (Clan takes the first; the constraint asks for exactly one)."""
    found = _members(roles, "controller")
    return found[0] if found else None


@service.machine_generators
def machine_generators(ctx: MachineContext) -> list[Generator]:
    """Every member: its identity; per instance the network id (shared by all members) and its address."""
    me = ctx.machine.name
    gens = [identity_generator(me)]
    for instance, view in sorted(ctx.instances.items()):
        ctrl = _controller(view.roles)
        if ctrl is None:
            continue  # reported by the controller constraint
        gens.append(network_generator(instance, ctrl))
        gens.append(ip_generator(me, instance))
    return gens


# -- reading vars -----------------------------------------------------------------------------------


def _public(reader: VarsReader, generator: str, file: str, machine: str) -> str | None:
    """A public var of another member, or None while it is not generated yet."""
    return reader.public(generator, file, machine=machine).strip() if reader.has(generator, file, machine) else None


def member_ip(reader: VarsReader, machine: str, instance: str) -> str | None:
    """The member's ZeroTier address in the instance's network (Clan: `zerotier-ip-<m>-<i>/ip`)."""
    return _public(reader, ip_generator_name(machine, instance), IP, machine)


def node_id(reader: VarsReader, machine: str, instance: str) -> str | None:
    """The member's node id: the last 5 bytes of its RFC4193 address."""
    ip = member_ip(reader, machine, instance)
    return node_id_of(ip) if ip else None


def network_id(reader: VarsReader, instance: str, machine: str) -> str | None:
    return _public(reader, network_generator_name(instance), NETWORK_ID, machine)


def _require(value: str | None, what: str, machine: str) -> str:
    if value is None:
        raise ClanError.single(
            "vars-error",
            f"machines.{machine}",
            f"{what} of machine '{machine}' has not been generated yet",
            hint=f"run `pyclan vars generate {machine}`",
        )
    return value


def _members(roles: Mapping[str, RoleView], *names: str) -> list[str]:
    found = {m for r in names if r in roles for m in roles[r].machines}
    return sorted(found)


def default_ipv4_range(instance: str) -> ipaddress.IPv4Network:
    """The range "all" stands for: one /24 of 172.16.0.0/12, chosen by the instance name."""
    h = hashlib.sha256(instance.encode()).digest()
    return ipaddress.IPv4Network(f"172.{16 + h[0] % 16}.{h[1]}.0/24")


def ip_ranges(instance: str, roles: Mapping[str, RoleView]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The union of every peer's `ipRanges`, in first-seen order."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    if "peer" in roles:
        for member in sorted(roles["peer"].machines):
            for item in roles["peer"].machines[member].settings.ipRanges:
                net = default_ipv4_range(instance) if item == "all" else ipaddress.ip_network(item, strict=False)
                if net not in out:
                    out.append(net)
    return out


def network_config(
    network: str,
    name: str,
    settings: ControllerSettings,
    ranges: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> dict[str, Any]:
    """The controller's network object (`controller.d/network/<nwid>.json`), as Clan renders it plus ranges."""
    pools = []
    routes = []
    for net in ranges:
        first, last = (net[1], net[-2]) if net.num_addresses > 2 else (net[0], net[-1])  # no network/broadcast
        pools.append({"ipRangeStart": str(first), "ipRangeEnd": str(last)})
        routes.append({"target": str(net), "via": None})
    return {
        "authTokens": [None],
        "authorizationEndpoint": "",
        "capabilities": [],
        "clientId": "",
        "dns": {},
        "enableBroadcast": True,
        "id": network,
        "ipAssignmentPools": pools,
        "mtu": 2800,
        "multicastLimit": 32,
        "name": name,
        "nwid": network,
        "objtype": "network",
        "private": not settings.public,
        "remoteTraceLevel": 0,
        "remoteTraceTarget": None,
        "revision": 1,
        "routes": routes,
        "rules": [{"not": False, "or": False, "type": "ACTION_ACCEPT"}],
        "rulesSource": "",
        "ssoEnabled": False,
        "tags": [],
        "v4AssignMode": {"zt": settings.dynamicIp.enable},
        "v6AssignMode": {"6plane": False, "rfc4193": True, "zt": False},
    }


def member_config(network: str, node: str) -> dict[str, Any]:
    """An authorised member (`controller.d/network/<nwid>/member/<id>.json`)."""
    return {
        "activeBridge": False,
        "address": node,
        "authorized": True,
        "capabilities": [],
        "id": node,
        "ipAssignments": [],
        "noAutoAssignIps": False,
        "nwid": network,
        "objtype": "member",
        "revision": 1,
        "tags": [],
    }


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _joined_networks(ctx: InstanceContext[Any]) -> MachineConfig:
    """Join the instance's network and orbit its moons (every role does, as Clan's perMachine and shared.nix)."""
    me, instance = ctx.machine.name, ctx.instance_name
    cfg = MachineConfig()
    if _controller(ctx.roles) is not None:
        network = _require(network_id(ctx.vars, instance, me), f"the ZeroTier network id of instance '{instance}'", me)
        ip = _require(member_ip(ctx.vars, me, instance), "the ZeroTier address", me)
        cfg.file(f"{SRC_DIR}/join/{network}", f"instance={instance}\nip={ip}\n")
    for moon in _members(ctx.roles, "moon"):
        moon_id = node_id(ctx.vars, moon, instance)
        if moon != me and moon_id is not None:  # Clan skips moons whose address is not generated yet
            cfg.file(f"{SRC_DIR}/orbit/{moon_id}", f"instance={instance}\nmoon={moon}\n")
    return cfg


@service.role("peer", interface=PeerSettings, description="A peer that connects to your private ZeroTier network.")
def peer(ctx: InstanceContext[PeerSettings]) -> MachineConfig:
    cfg = _joined_networks(ctx)
    for moon_id in ctx.settings.orbitMoons:
        cfg.file(f"{SRC_DIR}/orbit/{moon_id}", f"instance={ctx.instance_name}\nmoon=external\n")
    return cfg


@service.role(
    "controller",
    interface=ControllerSettings,
    description="Manages network membership and is responsible for admitting new peers to your ZeroTier network.",
)
def controller(ctx: InstanceContext[ControllerSettings]) -> MachineConfig:
    me, instance = ctx.machine.name, ctx.instance_name
    network = _require(network_id(ctx.vars, instance, me), "the ZeroTier network id", me)
    cfg = _joined_networks(ctx)
    cfg.file(
        f"{SRC_DIR}/controller/{network}.json",
        _json(network_config(network, instance, ctx.settings, ip_ranges(instance, ctx.roles))),
    )
    # Clan: every member whose address is generated, the controller itself, allowedIps and allowedIds
    nodes = (node_id(ctx.vars, m, instance) for m in _members(ctx.roles, "controller", "moon", "peer"))
    found = {n for n in nodes if n is not None} | {network[:10]}
    found |= {node_id_of(ip) for ip in ctx.settings.allowedIps}
    found |= set(ctx.settings.allowedIds)
    for node in sorted(found):
        cfg.file(f"{SRC_DIR}/controller/{network}/member/{node}.json", _json(member_config(network, node)))
    return cfg


@service.role(
    "moon",
    interface=MoonSettings,
    description=(
        "A moon acts as a relay node to connect other nodes in the zerotier network that are not publicly "
        "reachable. Each moon must be publicly reachable."
    ),
)
def moon(ctx: InstanceContext[MoonSettings]) -> MachineConfig:
    cfg = _joined_networks(ctx)
    if ctx.settings.stableEndpoints:
        # one line: the hook splices it into the moon definition that zerotier-idtool creates
        cfg.file(f"{SRC_DIR}/moon/{ctx.instance_name}.json", json.dumps(ctx.settings.stableEndpoints) + "\n")
    return cfg


# -- exports ------------------------------------------------------------------------------------------


@service.instance_exports
def networking(ctx: ServiceContext) -> ExportMap:
    return {
        build_scope_key(ctx.service_name, instance): {
            "networking": {"priority": NETWORKING_PRIORITY, "module": "clan_lib.network.zerotier"}
        }
        for instance in ctx.instances
    }


def _member_exports(ctx: InstanceContext[Any]) -> ExportMap:
    """A member's ZeroTier address in the instance's network, once the vars exist."""
    ip = member_ip(ctx.vars, ctx.machine.name, ctx.instance_name)
    return ctx.mk_exports({"peer": {"hosts": [{"plain": ip}]}}) if ip else {}


peer.exports(_member_exports)
controller.exports(_member_exports)
moon.exports(_member_exports)


# -- per machine: identity and the hook that applies everything ----------------------------------------


@cache
def _apply_template() -> str:
    return resources.files(__package__).joinpath("_zerotier_apply.sh").read_text(encoding="utf-8")


def apply_script(identity_secret: str) -> str:
    """POSIX sh: install identity, joined networks, controller database and moons into zerotier-one's home.

    Idempotent. A file is (re)installed only when pyclan's rendering of it changed since the last
    run (zerotier-one rewrites its controller database, so the installed copy is not compared), and
    zerotier-one is restarted only then, and only if it is installed. The script is the packaged
    `_zerotier_apply.sh`; its `@NAME@` placeholders are filled in here (the secret's path quoted).
    """
    values = {
        "@ZT_HOME@": ZT_HOME,
        "@SRC_DIR@": SRC_DIR,
        "@HOOK_STATE_DIR@": HOOK_STATE_DIR,
        "@SYSTEMD_BOOTED@": SYSTEMD_BOOTED,
        "@IDENTITY_SECRET@": sh_quote(identity_secret),
    }
    return re.sub("|".join(map(re.escape, values)), lambda m: values[m.group(0)], _apply_template())


# zerotier-one is active and listens on its port, where it is installed (as the hook, it is not an error
# that it is not: Debian 12 does not package it)
ZEROTIER_CHECK = (
    "! systemctl cat zerotier-one.service >/dev/null 2>&1 || "
    "{ systemctl is-active zerotier-one.service && ss -Hlun 'sport = :9993' | grep -q .; }"
)


@service.per_machine
def per_machine(ctx: MachineContext) -> MachineConfig:
    secret = ctx.vars.secret_path(identity_generator_name(ctx.machine.name), IDENTITY_SECRET)
    return (
        MachineConfig()
        .file(f"{SRC_DIR}/apply.sh", apply_script(secret), mode="0755")
        .hook("zerotier", f"sh {SRC_DIR}/apply.sh")
        .check("zerotier-one-running", command=ZEROTIER_CHECK, timeout=20)
    )
