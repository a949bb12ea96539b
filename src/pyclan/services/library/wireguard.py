"""wireguard: a WireGuard mesh of controllers and peers (Clan's `wireguard`), rendered for wg-quick.

Addressing follows Clan: the instance name gives a /40 IPv6 ULA prefix, every controller gets a /56 of
it (from its name) and the address `<prefix>::1`, and every peer a 64-bit suffix (from its name) that it
uses in every controller's /56. pyclan also gives every member one IPv4 address in `ipv4Range` (a
controller setting; default a /16 in 10.100.0.0–10.163.255.255 chosen by the instance name): the
address of machine m is the host number sha256(m) mod the range size, moved up to the next free one
if two members collide (members taken in name order), so a ping needs no IPv6.

Peers connect to every controller; controllers connect to every peer and every other controller and
forward between them (IPv4 and IPv6 forwarding on). Each member's key pair comes from the generator
`wireguard-keys-<instance>` (`privatekey` secret, `publickey` public); the private key never enters the
config: `/etc/wireguard/<instance>.conf` sets it with `PostUp = wg set %i private-key <secret path>`.
`wg-quick@<instance>.service` brings the interface up; without a kernel module wg-quick falls back to
wireguard-go, which is installed too.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyclan.errors import ClanError
from pyclan.services import (
    Constraints,
    Generator,
    GeneratorInput,
    InstanceContext,
    MachineConfig,
    RoleConstraint,
    RoleView,
    Service,
    ServiceContext,
    VarFile,
)
from pyclan.services.exports import ExportMap, build_scope_key
from pyclan.services.library._common import sh_quote, systemd_unit
from pyclan.services.library.internet import machine_host

SERVICE_NAME = "wireguard"
DEFAULT_PORT = 51820
KEEPALIVE = 25
CONF_DIR = "/etc/wireguard"
_IFNAME = re.compile(r"^[a-zA-Z0-9_=+.-]{1,15}$")  # what wg-quick accepts as an interface name

service = Service(
    SERVICE_NAME,
    description="WireGuard-based VPN mesh network with automatic IPv6 address allocation",
    readme=(
        "Controllers (reachable at an endpoint) route between peers; every member gets deterministic "
        "IPv6 (Clan's layout) and IPv4 addresses. Renders wg-quick configs for Debian."
    ),
    categories=["Network"],
    constraints=Constraints(roles={"controller": RoleConstraint(min_machines=1)}),
    exports_out=("networking", "peer"),
)


# -- settings ------------------------------------------------------------------------------------------


class _Shared(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(
        default=DEFAULT_PORT,
        ge=1,
        le=65535,
        description="UDP port of the WireGuard interface (controllers listen on it; unused on peers, as in Clan)",
    )
    domain: str | None = Field(
        default=None,
        description="Domain for the /etc/hosts names `<machine>.<domain>`; default: the instance name",
    )
    mtu: int | None = Field(
        default=None, ge=68, le=65535,
        description="MTU (maximum transmission unit) of the WireGuard interface; null: wg-quick's choice",
    )


class ControllerSettings(_Shared):
    """Settings of the `controller` role."""

    endpoint: str | None = Field(
        default=None,
        description=(
            "Host name or IP address where peers reach this controller; default: the machine's `internet` host"
        ),
        examples=["vpn.clan.lol"],
    )
    ipv4Range: str | None = Field(  # pyclan addition; the same on every controller of an instance
        default=None,
        description=(
            "IPv4 range (CIDR) for the members' addresses; default: a /16 in 10.100.0.0–10.163.255.255 chosen "
            "by the instance name"
        ),
        examples=["10.77.0.0/24"],
    )

    @field_validator("ipv4Range")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                net = ipaddress.IPv4Network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IPv4 range in CIDR notation") from None
            if net.prefixlen > 30:
                raise ValueError(f"{value!r} is too small: use at most /30")
        return value


class PeerSettings(_Shared):
    """Settings of the `peer` role."""

    controller: str | None = Field(
        default=None,
        description=(
            "The controller whose subnet names this peer in /etc/hosts and that routes its IPv4 traffic to other "
            "peers; required only with several controllers"
        ),
        examples=["controller1"],
    )


# -- addresses -------------------------------------------------------------------------------------------


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ula_prefix(instance: str) -> ipaddress.IPv6Network:
    """The instance's /40: `fd` + the first 24 bits of sha256(instance) (Clan's layout)."""
    bits = int(_sha256_hex(instance)[:8], 16) & 0xFFFFFF00
    return ipaddress.IPv6Network(((0xFD << 120) | (bits << 88), 40))


def controller_subnet(instance: str, controller: str) -> ipaddress.IPv6Network:
    """A controller's /56 of the instance's /40, from the first 16 bits of sha256(controller)."""
    base = int(ula_prefix(instance).network_address)
    return ipaddress.IPv6Network((base | (int(_sha256_hex(controller)[:4], 16) << 72), 56))


def controller_address(instance: str, controller: str) -> ipaddress.IPv6Address:
    return controller_subnet(instance, controller).network_address + 1


def peer_suffix(peer: str) -> int:
    """A peer's 64-bit host suffix: the first 64 bits of sha256(peer)."""
    return int(_sha256_hex(peer)[:16], 16)


def peer_address(instance: str, controller: str, peer: str) -> ipaddress.IPv6Address:
    """A peer's address in one controller's subnet: the controller's /64 + the peer's suffix."""
    return ipaddress.IPv6Address(int(controller_subnet(instance, controller).network_address) | peer_suffix(peer))


def default_ipv4_range(instance: str) -> ipaddress.IPv4Network:
    """A /16 in 10.100.0.0–10.163.255.255, chosen by the instance name."""
    return ipaddress.IPv4Network(f"10.{100 + bytes.fromhex(_sha256_hex(instance))[0] % 64}.0.0/16")


def ipv4_addresses(network: ipaddress.IPv4Network, members: Iterable[str]) -> dict[str, ipaddress.IPv4Address]:
    """Every member's IPv4 address: host sha256(name) mod size, probing upwards on collisions (name order)."""
    size = network.num_addresses - 2  # without network and broadcast address
    taken: set[int] = set()
    out: dict[str, ipaddress.IPv4Address] = {}
    for member in sorted(members):
        if len(taken) >= size:
            raise ClanError.single(
                "settings-type",
                "ipv4Range",
                f"the IPv4 range {network} has room for {size} members, but there are more",
                hint="choose a larger ipv4Range for the controllers",
            )
        slot = int(_sha256_hex(member), 16) % size
        while slot in taken:
            slot = (slot + 1) % size
        taken.add(slot)
        out[member] = network.network_address + 1 + slot
    return out


@dataclass(frozen=True)
class Layout:
    """Everything about an instance's addressing that every member agrees on."""

    instance: str
    controllers: tuple[str, ...]
    peers: tuple[str, ...]
    ipv4_network: ipaddress.IPv4Network
    ipv4: Mapping[str, ipaddress.IPv4Address]

    def designated(self, peer: str, choice: str | None) -> str | None:
        """The controller a peer routes its IPv4 range through (and is named by in /etc/hosts)."""
        if choice is not None:
            return choice
        return self.controllers[0] if self.controllers else None

    def v6_of(self, machine: str, designated: str | None) -> ipaddress.IPv6Address | None:
        if machine in self.controllers:
            return controller_address(self.instance, machine)
        return peer_address(self.instance, designated, machine) if designated else None


def layout(instance: str, roles: Mapping[str, RoleView]) -> Layout:
    """The addressing of an instance, from its members and the controllers' `ipv4Range`."""
    controllers = tuple(sorted(roles["controller"].machines)) if "controller" in roles else ()
    peers = tuple(sorted(roles["peer"].machines)) if "peer" in roles else ()
    ranges = {c: roles["controller"].machines[c].settings.ipv4Range for c in controllers}
    chosen = {r for r in ranges.values() if r is not None}
    if len(chosen) > 1 or (chosen and None in ranges.values()):
        listing = ", ".join(f"{c}: {r or 'default'}" for c, r in sorted(ranges.items()))
        raise ClanError.single(
            "conflict",
            f"instances.{instance}.roles.controller.settings.ipv4Range",
            f"the controllers of wireguard instance '{instance}' disagree on ipv4Range ({listing})",
            hint="set ipv4Range once, role-wide: roles.controller.settings.ipv4Range",
        )
    network = ipaddress.IPv4Network(chosen.pop(), strict=False) if chosen else default_ipv4_range(instance)
    return Layout(instance, controllers, peers, network, ipv4_addresses(network, {*controllers, *peers}))


# -- keys ------------------------------------------------------------------------------------------------


def keys_generator_name(instance: str) -> str:
    return f"wireguard-keys-{instance}"


def wireguard_keypair() -> tuple[str, str]:
    """(private, public) as `wg genkey | tee priv | wg pubkey` prints them: base64, clamped private key."""
    from cryptography.hazmat.primitives import serialization  # only when keys are made (start-up time)
    from cryptography.hazmat.primitives.asymmetric import x25519

    raw = bytearray(x25519.X25519PrivateKey.generate().private_bytes_raw())
    raw[0] &= 248
    raw[31] = (raw[31] & 127) | 64
    public = x25519.X25519PrivateKey.from_private_bytes(bytes(raw)).public_key()
    pub = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(bytes(raw)).decode(), base64.b64encode(pub).decode()


@dataclass(frozen=True)
class KeyRun:
    """Generator run: a WireGuard key pair."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        private, public = wireguard_keypair()
        return {"privatekey": private + "\n", "publickey": public + "\n"}


def keys_generator(instance: str) -> Generator:
    return Generator(
        name=keys_generator_name(instance),
        files={"privatekey": VarFile(secret=True), "publickey": VarFile(secret=False)},
        run=KeyRun(),
    )


def network_generator_name(instance: str) -> str:
    return f"wireguard-network-{instance}"


def clan_prefix(instance: str, controller: str) -> str:
    """A controller's /56 as Clan's allocator writes it (`fd51:19c1:3b:f700`): the address without `::`."""
    return str(controller_subnet(instance, controller).network_address).rstrip(":")


def clan_suffix(peer: str) -> str:
    """A peer's suffix as Clan's allocator writes it: four groups of four hex digits (`8750:a09b:0001:…`)."""
    h = _sha256_hex(peer)[:16]
    return f"{h[0:4]}:{h[4:8]}:{h[8:12]}:{h[12:16]}"


@dataclass(frozen=True)
class PrefixRun:
    """Generator run: the controller's subnet prefix (Clan's `wireguard-network-<instance>/prefix`)."""

    instance: str
    controller: str

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        return {"prefix": clan_prefix(self.instance, self.controller)}


@dataclass(frozen=True)
class SuffixRun:
    """Generator run: the peer's host suffix (Clan's `wireguard-network-<instance>/suffix`)."""

    peer: str

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        return {"suffix": clan_suffix(self.peer)}


def network_generator(instance: str, machine: str, role: str) -> Generator:
    """Clan's per-machine address var. Its value is a function of the names, so pyclan renders from the
    names directly; the generator keeps the vars of a Clan clan recognised and complete."""
    file, run = ("prefix", PrefixRun(instance, machine)) if role == "controller" else ("suffix", SuffixRun(machine))
    return Generator(
        name=network_generator_name(instance),
        files={file: VarFile(secret=False)},
        validation={"hostname": machine},
        run=run,
    )


# -- rendering -------------------------------------------------------------------------------------------


def _endpoint(ctx: InstanceContext[Any], controller: str) -> str:
    settings: ControllerSettings = ctx.roles["controller"].machines[controller].settings
    host = settings.endpoint or machine_host(ctx.exports, controller)
    if not host:
        raise ClanError.single(
            "missing-setting",
            f"instances.{ctx.instance_name}.roles.controller.machines.{controller}.settings.endpoint",
            f"controller '{controller}' of wireguard instance '{ctx.instance_name}' has no endpoint",
            hint=f"set its `endpoint` (host name or IP address), or give '{controller}' a host in an `internet` "
            "instance",
        )
    try:
        is_v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        is_v6 = False
    return f"[{host}]:{settings.port}" if is_v6 else f"{host}:{settings.port}"


def _public_key(ctx: InstanceContext[Any], machine: str) -> str:
    return ctx.vars.public(keys_generator_name(ctx.instance_name), "publickey", machine=machine).strip()


def _peer_section(comment: str, public_key: str, allowed: Sequence[str], endpoint: str | None = None) -> list[str]:
    lines = ["", "[Peer]", f"# {comment}", f"PublicKey = {public_key}", f"AllowedIPs = {', '.join(allowed)}"]
    if endpoint is not None:
        lines.append(f"Endpoint = {endpoint}")
    lines.append(f"PersistentKeepalive = {KEEPALIVE}")
    return lines


def _interface(ctx: InstanceContext[Any], addresses: Sequence[str], port: int | None, forward: bool) -> list[str]:
    secret = ctx.vars.secret_path(keys_generator_name(ctx.instance_name), "privatekey")
    lines = [
        f"# Managed by pyclan: wireguard instance '{ctx.instance_name}', role {ctx.role_name} of '{ctx.machine.name}'.",
        "# The private key is not in this file: PostUp loads it from the deployed secret.",
        "[Interface]",
        f"Address = {', '.join(addresses)}",
    ]
    if port is not None:
        lines.append(f"ListenPort = {port}")
    if ctx.settings.mtu is not None:
        lines.append(f"MTU = {ctx.settings.mtu}")
    lines.append(f"PostUp = wg set %i private-key {secret}")
    if forward:  # route between peers; /proc, because minimal Debian has no sysctl binary
        lines.append("PostUp = echo 1 > /proc/sys/net/ipv4/ip_forward")
        v6 = "/proc/sys/net/ipv6/conf/all/forwarding"
        lines.append(f"PostUp = [ ! -w {v6} ] || echo 1 > {v6}")
    return lines


def controller_conf(ctx: InstanceContext[ControllerSettings], net: Layout) -> str:
    me = ctx.machine.name
    lines = _interface(
        ctx,
        [f"{controller_address(net.instance, me)}/40", f"{net.ipv4[me]}/{net.ipv4_network.prefixlen}"],
        ctx.settings.port,
        forward=True,
    )
    for peer in net.peers:
        allowed = [f"{peer_address(net.instance, c, peer)}/96" for c in net.controllers] + [f"{net.ipv4[peer]}/32"]
        lines += _peer_section(f"{peer} (peer)", _public_key(ctx, peer), allowed)
    for other in net.controllers:
        if other != me:
            allowed = [str(controller_subnet(net.instance, other)), f"{net.ipv4[other]}/32"]
            lines += _peer_section(f"{other} (controller)", _public_key(ctx, other), allowed, _endpoint(ctx, other))
    return "\n".join(lines) + "\n"


def peer_conf(ctx: InstanceContext[PeerSettings], net: Layout) -> str:
    me = ctx.machine.name
    designated = net.designated(me, ctx.settings.controller)
    addresses = [f"{peer_address(net.instance, c, me)}/56" for c in net.controllers]
    lines = _interface(ctx, [*addresses, f"{net.ipv4[me]}/{net.ipv4_network.prefixlen}"], None, forward=False)
    for c in net.controllers:
        v4 = str(net.ipv4_network) if c == designated else f"{net.ipv4[c]}/32"
        allowed = [str(controller_subnet(net.instance, c)), v4]
        lines += _peer_section(f"{c} (controller)", _public_key(ctx, c), allowed, _endpoint(ctx, c))
    return "\n".join(lines) + "\n"


def hosts_block(ctx: InstanceContext[Any], net: Layout, domain: str) -> str:
    """`/etc/hosts` lines for every member: `<name>.<domain>` (IPv6 as in Clan, then IPv4)."""
    lines = [f"# BEGIN pyclan wireguard {ctx.instance_name}"]
    peers: Mapping[str, Any] = ctx.roles["peer"].machines if "peer" in ctx.roles else {}
    for member in sorted({*net.controllers, *net.peers}):
        choice = peers[member].settings.controller if member in peers and member not in net.controllers else None
        v6 = net.v6_of(member, net.designated(member, choice))
        if v6 is not None:
            lines.append(f"{v6} {member}.{domain}")
        lines.append(f"{net.ipv4[member]} {member}.{domain}")
    lines.append(f"# END pyclan wireguard {ctx.instance_name}")
    return "\n".join(lines) + "\n"


def hosts_hook(instance: str, block_file: str) -> str:
    """POSIX sh: replace this instance's block in /etc/hosts (in place: /etc/hosts may be a bind mount)."""
    begin = sh_quote(f"# BEGIN pyclan wireguard {instance}")
    end = sh_quote(f"# END pyclan wireguard {instance}")
    return f"""set -eu
tmp=$(mktemp)
awk -v b={begin} -v e={end} '$0 == b {{ skip = 1; next }} $0 == e {{ skip = 0; next }} !skip' /etc/hosts > "$tmp"
cat {sh_quote(block_file)} >> "$tmp"
cmp -s "$tmp" /etc/hosts || cat "$tmp" > /etc/hosts
rm -f "$tmp"
"""


def wg_quick_unit(instance: str) -> str:
    """`wg-quick@<instance>.service`, as Debian's template unit but for this one interface."""
    return systemd_unit(
        {
            "Unit": {
                "Description": f"WireGuard via wg-quick(8) for {instance} (pyclan wireguard instance)",
                "After": "network-online.target nss-lookup.target",
                "Wants": "network-online.target nss-lookup.target",
                "Documentation": "man:wg-quick(8) man:wg(8)",
            },
            "Service": {
                "Type": "oneshot",
                "RemainAfterExit": True,
                "ExecStart": f"/usr/bin/wg-quick up {instance}",
                "ExecStop": f"/usr/bin/wg-quick down {instance}",
                "Environment": "WG_ENDPOINT_RESOLUTION_RETRIES=infinity",
            },
            "Install": {"WantedBy": "multi-user.target"},
        }
    )


def _check_instance(ctx: InstanceContext[Any]) -> None:
    if not _IFNAME.match(ctx.instance_name):
        raise ClanError.single(
            "service-error",
            f"instances.{ctx.instance_name}",
            f"the wireguard instance name '{ctx.instance_name}' is not a valid interface name",
            hint="use at most 15 letters, digits or _=+.- : the instance name is the interface name",
        )
    if set(ctx.machine.roles) >= {"controller", "peer"}:
        raise ClanError.single(
            "service-error",
            f"instances.{ctx.instance_name}.roles",
            f"Machine '{ctx.machine.name}' cannot have both 'controller' and 'peer' roles in the wireguard "
            f"instance '{ctx.instance_name}'. A machine must be either a controller or a peer, not both.",
            hint="remove it from one of the two roles",
        )


def _render(ctx: InstanceContext[Any], conf: str, domain: str, net: Layout) -> MachineConfig:
    i = ctx.instance_name
    conf_path = f"{CONF_DIR}/{i}.conf"
    hosts_path = f"{CONF_DIR}/{i}.hosts"
    secret = ctx.vars.secret_path(keys_generator_name(i), "privatekey")
    return (
        MachineConfig()
        .package("wireguard-tools", "wireguard-go", "iproute2")
        .file(conf_path, conf, mode="0600")
        .file(hosts_path, hosts_block(ctx, net, domain))
        .unit(f"wg-quick@{i}.service", wg_quick_unit(i), restart_on=[conf_path, secret])
        .hook(f"wireguard-hosts-{i}", hosts_hook(i, hosts_path))
        # wg-quick brings the interface up; `ip link show up` prints it only while it is up
        .check(f"wireguard-{i}-up", command=f"ip link show dev {sh_quote(i)} up | grep -q .", timeout=15)
    )


@service.role(
    "controller",
    interface=ControllerSettings,
    description="A controller that routes peer traffic. Must be publicly reachable.",
)
def controller(ctx: InstanceContext[ControllerSettings]) -> MachineConfig:
    _check_instance(ctx)
    net = layout(ctx.instance_name, ctx.roles)
    return _render(ctx, controller_conf(ctx, net), ctx.settings.domain or ctx.instance_name, net)


@service.role("peer", interface=PeerSettings, description="A peer that connects to one or more controllers.")
def peer(ctx: InstanceContext[PeerSettings]) -> MachineConfig:
    _check_instance(ctx)
    net = layout(ctx.instance_name, ctx.roles)
    choice = ctx.settings.controller
    if choice is not None and choice not in net.controllers:
        raise ClanError.single(
            "settings-type",
            f"instances.{ctx.instance_name}.roles.peer.machines.{ctx.machine.name}.settings.controller",
            f"'{choice}' is not a controller of wireguard instance '{ctx.instance_name}'",
            hint=f"use one of: {', '.join(net.controllers) or '(no controllers)'}",
        )
    if choice is None and len(net.controllers) > 1:
        raise ClanError.single(
            "missing-setting",
            f"instances.{ctx.instance_name}.roles.peer.machines.{ctx.machine.name}.settings.controller",
            f"wireguard instance '{ctx.instance_name}' has several controllers: peer '{ctx.machine.name}' must "
            "choose one with `controller`",
            hint=f"set controller to one of: {', '.join(net.controllers)}",
        )
    return _render(ctx, peer_conf(ctx, net), ctx.settings.domain or ctx.instance_name, net)


@controller.generators
def controller_keys(ctx: InstanceContext[ControllerSettings]) -> list[Generator]:
    return [keys_generator(ctx.instance_name), network_generator(ctx.instance_name, ctx.machine.name, "controller")]


@peer.generators
def peer_keys(ctx: InstanceContext[PeerSettings]) -> list[Generator]:
    gens = [keys_generator(ctx.instance_name)]
    controllers = ctx.roles.get("controller")
    if controllers is None or ctx.machine.name not in controllers.machines:  # both roles: the role says why not
        gens.append(network_generator(ctx.instance_name, ctx.machine.name, "peer"))
    return gens


def _member_exports(ctx: InstanceContext[Any]) -> ExportMap:
    """Clan's `peer` interface: where the member answers inside the VPN. Clan exports the name
    `<machine>.<domain>`, which only members resolve (their /etc/hosts); pyclan exports the member's
    IPv4 and IPv6 addresses, so a controller routed into the VPN reaches them too."""
    net = layout(ctx.instance_name, ctx.roles)
    me = ctx.machine.name
    choice = ctx.settings.controller if isinstance(ctx.settings, PeerSettings) else None
    v6 = net.v6_of(me, net.designated(me, choice))
    hosts = [str(net.ipv4[me])] + ([str(v6)] if v6 is not None else [])
    return ctx.mk_exports({"peer": {"hosts": [{"plain": h} for h in hosts]}})


controller.exports(_member_exports)
peer.exports(_member_exports)


@service.instance_exports
def networking(ctx: ServiceContext) -> ExportMap:
    return {
        build_scope_key(ctx.service_name, instance): {"networking": {"priority": 1000}} for instance in ctx.instances
    }
