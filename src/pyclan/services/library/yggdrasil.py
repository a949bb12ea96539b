"""yggdrasil: an encrypted IPv6 overlay network of the clan's machines (Clan's `yggdrasil`), with Debian's 0.4.7.

Keys come from the generator `yggdrasil`: an ed25519 key made in Python (`privateKey` secret, in the
hex form yggdrasil 0.4 reads; `publicKey` public, hex as in Clan) and the node's IPv6 `address`,
derived from the public key as yggdrasil does (200::/7, the count of leading one bits of the
inverted key, then the bits after them). Peers are every address that other services export for
the other members (`peer.hosts`, e.g. the `internet` service), like Clan; only clan members'
keys may peer (`AllowedPublicKeys`), and an nftables rule drops traffic on the `ygg` interface from
addresses outside the clan. `/etc/hosts` maps `<machine>.<domain>` to each member's address.

Debian 12's yggdrasil is 0.4.7, older than the 0.5 Clan uses: it has tcp://, tls:// and socks://
but no quic:// or ws:// listeners, so the `quic` and `ws` ports are accepted and unused.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyclan.errors import ClanError
from pyclan.services import Generator, GeneratorInput, InstanceContext, MachineConfig, Service, ServiceContext, VarFile
from pyclan.services.exports import ExportMap, ExportValue, build_scope_key, parse_scope
from pyclan.services.library._common import SYSTEMD_BOOTED, sh_quote

SERVICE_NAME = "yggdrasil"
GENERATOR = "yggdrasil"
CONF = "/etc/yggdrasil/yggdrasil.conf"
TEMPLATE = "/etc/pyclan/yggdrasil/yggdrasil.conf"
FILTER = "/etc/pyclan/yggdrasil/filter.nft"
HOSTS_BLOCK = "/etc/pyclan/yggdrasil/hosts"
DROP_IN = "/etc/systemd/system/yggdrasil.service.d/10-pyclan.conf"
# Debian's udev makes /dev/net/tun 0666 (systemd's 50-udev-default.rules); hosts without udev (containers)
# leave it 0600, and Debian's unit runs yggdrasil as the user yggdrasil, which then cannot open it.
DROP_IN_TEXT = """# Managed by pyclan (yggdrasil service)
[Service]
ExecStartPre=+/bin/sh -c '[ ! -c /dev/net/tun ] || chmod 0666 /dev/net/tun'
"""
PRIORITY = 2000
KEY_PLACEHOLDER = "@PYCLAN_YGGDRASIL_PRIVATE_KEY@"
_URI = re.compile(r"^(tcp|tls|socks|quic|ws|wss|unix)://\S+$")

service = Service(
    SERVICE_NAME,
    description="Yggdrasil encrypted IPv6 routing overlay network",
    readme=(
        "Every member runs Debian's yggdrasil (0.4.7) with a key from vars (generator `yggdrasil`), peers with "
        "the addresses other services export for the other members, and reaches them as <machine>.<domain>."
    ),
    categories=["Network"],
    exports_out=("networking", "peer"),
)


class Ports(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tcp: int = Field(default=6443, ge=1, le=65535, description="TCP port, used for the tcp:// yggdrasil listener")
    quic: int = Field(default=6444, ge=1, le=65535,
                      description="QUIC port, used for the quic:// yggdrasil listener (unused: yggdrasil 0.4)")
    ws: int = Field(default=6445, ge=1, le=65535,
                    description="Websocket port, used for the ws:// yggdrasil listener (unused: yggdrasil 0.4)")
    tls: int = Field(default=6446, ge=1, le=65535, description="TLS port, used for the tls:// yggdrasil listener")


class Settings(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    multicastInterfaces: list[dict[str, Any]] = Field(
        default_factory=list,
        description=(
            "Interfaces for multicast peer discovery ({Regex, Beacon, Listen, Port, Priority}); "
            "empty: every interface"
        ),
        examples=[[{"Regex": "(wg|zt|tailscale|mycelium|tinc|tun|tap).*", "Beacon": True, "Listen": True,
                    "Port": 5400, "Priority": 0}]],
    )
    ports: Ports = Field(default_factory=Ports, description="Port configuration for Yggdrasil listeners.")
    extraPeers: list[str] = Field(
        default_factory=list,
        description="Additional static peers for this host (URIs such as tcp://192.168.1.1:6443)",
        examples=[["tcp://192.168.1.1:6443", "tls://192.168.1.1:6446"]],
    )
    extraYggdrasilIPs: list[str] = Field(
        default_factory=list,
        description="Yggdrasil addresses outside the clan that may send traffic to this host",
        examples=[["324:71e:281a:9ed3::cafe"]],
    )

    @field_validator("extraPeers")
    @classmethod
    def _peers(cls, value: list[str]) -> list[str]:
        for uri in value:
            if not _URI.match(uri):
                raise ValueError(f"{uri!r} is not a yggdrasil peer URI (tcp://host:port, tls://…, socks://…)")
        return value

    @field_validator("extraYggdrasilIPs")
    @classmethod
    def _ips(cls, value: list[str]) -> list[str]:
        for ip in value:
            try:
                ipaddress.IPv6Address(ip)
            except ValueError:
                raise ValueError(f"{ip!r} is not an IPv6 address") from None
        return value


# -- keys and addresses ----------------------------------------------------------------------------


def address_for_key(public_key: bytes) -> ipaddress.IPv6Address:
    """yggdrasil's address of a key: 0x02, the number of leading ones of ~key, then the bits after the first 0."""
    bits = "".join(f"{b ^ 0xFF:08b}" for b in public_key)
    ones = len(bits) - len(bits.lstrip("1"))
    rest = bits[ones + 1:]
    tail = bytes(int(rest[i:i + 8], 2) for i in range(0, len(rest) - len(rest) % 8, 8))  # whole bytes only
    return ipaddress.IPv6Address((bytes([0x02, ones]) + tail)[:16])


def yggdrasil_keypair() -> tuple[str, str, str]:
    """(private key as yggdrasil 0.4's hex seed+public, public key hex, IPv6 address)."""
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return (seed + public).hex(), public.hex(), str(address_for_key(public))


@dataclass(frozen=True)
class KeyRun:
    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        private, public, address = yggdrasil_keypair()
        return {"privateKey": private + "\n", "publicKey": public, "address": address}


def key_generator() -> Generator:
    return Generator(
        name=GENERATOR,
        files={"privateKey": VarFile(secret=True), "publicKey": VarFile(secret=False),
               "address": VarFile(secret=False)},
        run=KeyRun(),
    )


# -- exports ----------------------------------------------------------------------------------------


@service.instance_exports
def networking(ctx: ServiceContext) -> ExportMap:
    return {build_scope_key(ctx.service_name, i): {"networking": {"priority": PRIORITY}} for i in ctx.instances}


# -- peers ------------------------------------------------------------------------------------------


def _host_values(ctx: InstanceContext[Settings], value: ExportValue) -> list[str]:
    peer = value.get("peer")
    hosts = peer.get("hosts", []) if isinstance(peer, Mapping) else []
    if isinstance(peer, Mapping) and not hosts and isinstance(peer.get("host"), Mapping):
        hosts = [peer["host"]]  # pyclan's internet service exports one `host`
    out: list[str] = []
    for item in hosts if isinstance(hosts, list) else []:
        if not isinstance(item, Mapping):
            continue
        if isinstance(item.get("plain"), str):
            out.append(item["plain"].strip())
        elif isinstance(item.get("var"), Mapping):
            var = item["var"]
            try:
                if ctx.vars.has(var["generator"], var["file"], machine=var["machine"]):
                    out.append(ctx.vars.public(var["generator"], var["file"], machine=var["machine"]).strip())
            except (ClanError, KeyError, TypeError):
                continue  # a secret (e.g. a secret onion hostname) or a malformed entry: no peer from it
    return [h for h in out if h]


def peer_uris(host: str, ports: Ports) -> list[str]:
    """The URIs to reach `host`'s yggdrasil: onion hosts through Tor's SOCKS proxy, others on tcp and tls."""
    if host.endswith(".onion"):
        return [f"socks://127.0.0.1:9050/{host}:{ports.tcp}"]
    shown = f"[{host}]" if ":" in host else host
    return [f"tcp://{shown}:{ports.tcp}", f"tls://{shown}:{ports.tls}"]


def exported_peers(ctx: InstanceContext[Settings]) -> list[str]:
    """Peer URIs from every other service's exports for the other members (not yggdrasil's, not our own)."""
    members = set(ctx.roles["default"].machines)
    uris: list[str] = []
    for key, value in sorted(ctx.exports.items()):
        scope = parse_scope(key)
        if scope.service == SERVICE_NAME or not scope.machine or scope.machine == ctx.machine.name:
            continue
        if scope.machine not in members:
            continue
        for host in _host_values(ctx, value):
            uris += peer_uris(host, ctx.settings.ports)
    return list(dict.fromkeys(uris))


# -- rendering --------------------------------------------------------------------------------------


def _members_public(ctx: InstanceContext[Settings], file: str) -> dict[str, str]:
    found = {}
    for name in sorted(ctx.roles["default"].machines):
        if ctx.vars.has(GENERATOR, file, machine=name):
            found[name] = ctx.vars.public(GENERATOR, file, machine=name).strip()
    return found


def render_config(ctx: InstanceContext[Settings]) -> str:
    s = ctx.settings
    multicast = s.multicastInterfaces or [{"Regex": ".*", "Beacon": True, "Listen": True, "Port": 0, "Priority": 0}]
    conf = {
        "Peers": list(dict.fromkeys([*exported_peers(ctx), *s.extraPeers])),
        "InterfacePeers": {},
        "Listen": [f"tcp://[::]:{s.ports.tcp}", f"tls://[::]:{s.ports.tls}"],
        "AdminListen": "unix:///var/run/yggdrasil/yggdrasil.sock",
        "MulticastInterfaces": multicast,
        "AllowedPublicKeys": list(_members_public(ctx, "publicKey").values()),
        "PublicKey": ctx.vars.public(GENERATOR, "publicKey").strip(),
        "PrivateKey": KEY_PLACEHOLDER,
        "IfName": "ygg",
        "IfMTU": 65535,
        "NodeInfoPrivacy": True,
        "NodeInfo": {},
    }
    return json.dumps(conf, indent=2) + "\n"


def render_filter(allowed: list[str]) -> str:
    """nftables: on `ygg`, only clan members (and extraYggdrasilIPs) get through to the rest of the rules."""
    lines = [
        "# Managed by pyclan (yggdrasil service): traffic on ygg only from clan members",
        "table ip6 pyclan-yggdrasil",
        "delete table ip6 pyclan-yggdrasil",
        "table ip6 pyclan-yggdrasil {",
        "  chain input {",
        "    type filter hook input priority -10; policy accept;",
    ]
    if allowed:
        lines.append(f'    iifname "ygg" ip6 saddr {{ {", ".join(allowed)} }} return')
    lines += ['    iifname "ygg" drop', "  }", "}"]
    return "\n".join(lines) + "\n"


def render_hosts(addresses: Mapping[str, str], domain: str) -> str:
    lines = ["# BEGIN pyclan yggdrasil", *(f"{a} {m}.{domain}" for m, a in sorted(addresses.items())),
             "# END pyclan yggdrasil"]
    return "\n".join(lines) + "\n"


def _hook(private_key: str) -> str:
    begin, end = sh_quote("# BEGIN pyclan yggdrasil"), sh_quote("# END pyclan yggdrasil")
    return f"""set -eu
if ! getent group yggdrasil >/dev/null; then
  echo "yggdrasil: the yggdrasil package is not installed (no group yggdrasil)" >&2
  exit 1
fi
key=$(tr -cd 0-9a-f < {sh_quote(private_key)})
tmp=$(mktemp)
sed "s/{KEY_PLACEHOLDER}/$key/" {TEMPLATE} > "$tmp"
changed=
if ! cmp -s "$tmp" {CONF}; then
  install -d -m 0755 /etc/yggdrasil
  install -o root -g yggdrasil -m 0640 "$tmp" {CONF}
  changed=1
fi
rm -f "$tmp"
# /etc/hosts in place (it may be a bind mount): our block replaced
tmp=$(mktemp)
awk -v b={begin} -v e={end} '$0 == b {{ skip = 1; next }} $0 == e {{ skip = 0; next }} !skip' /etc/hosts > "$tmp"
cat {HOSTS_BLOCK} >> "$tmp"
cmp -s "$tmp" /etc/hosts || cat "$tmp" > /etc/hosts
rm -f "$tmp"
nft -f {FILTER}
if {SYSTEMD_BOOTED}; then
  systemctl daemon-reload
  systemctl enable yggdrasil.service >/dev/null 2>&1 || true
  if [ -n "$changed" ]; then systemctl restart yggdrasil.service; else systemctl start yggdrasil.service; fi
fi
"""


@service.role("default", interface=Settings, description="Placeholder role to apply the yggdrasil service")
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    cfg = MachineConfig().package("yggdrasil", "nftables")
    if not ctx.vars.has(GENERATOR, "publicKey"):
        return cfg  # before `vars generate`: no key to run with
    addresses = _members_public(ctx, "address")
    allowed = sorted({*addresses.values(), *ctx.settings.extraYggdrasilIPs})
    domain = str(ctx.meta.get("domain") or "clan")
    return (
        cfg.file(TEMPLATE, render_config(ctx))
        .file(FILTER, render_filter(allowed))
        .file(HOSTS_BLOCK, render_hosts(addresses, domain))
        .file(DROP_IN, DROP_IN_TEXT)
        .hook("yggdrasil", _hook(ctx.vars.secret_path(GENERATOR, "privateKey")))
        .check("yggdrasil-running", unit="yggdrasil.service", timeout=15)
        .check("yggdrasil-interface-up", command="ip link show dev ygg up | grep -q .", timeout=15)
    )


@default.generators
def default_generators(ctx: InstanceContext[Settings]) -> list[Generator]:
    return [key_generator()]


@default.exports
def peer_export(ctx: InstanceContext[Settings]) -> ExportMap:
    if not ctx.vars.has(GENERATOR, "address"):
        return {}
    return ctx.mk_exports({"peer": {"hosts": [{"plain": ctx.vars.public(GENERATOR, "address").strip()}]}})
