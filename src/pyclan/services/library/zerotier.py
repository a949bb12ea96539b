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

Identities are made in Python (no `zerotier-idtool`): a Curve25519 + Ed25519 key pair whose
memory-hard hash (SHA-512 + Salsa20 over 2 MiB, ZeroTier's "type 0" identity proof of work)
starts with a byte below 17; the address is the hash's last 5 bytes. The result is an identity
zerotier-one accepts (`locallyValidate`). This takes ~15 hash attempts on average: ~5 s per identity
with the system's libsodium (Salsa20 in C), ~20 s in pure Python where libsodium is missing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
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

SERVICE_NAME = "zerotier"
ZT_HOME = "/var/lib/zerotier-one"
SRC_DIR = "/etc/zerotier/pyclan"  # what the activation hook installs from
NETWORKING_PRIORITY = 900  # Clan: below `internet` (2000) and the default (1000)

# ==================================================================================================
# ZeroTier identities ("type 0": C25519), implemented from ZeroTier's public identity format.
# ==================================================================================================

_HASHCASH_FIRST_BYTE_LESS_THAN = 17
_GEN_MEMORY = 2 * 1024 * 1024
_SALSA_CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"
_M32 = 0xFFFFFFFF


def _salsa20_python(key: bytes, nonce: bytes, nbytes: int) -> bytes:
    """Salsa20/20 key stream, all blocks at once: each 32-bit word is a big int with one 64-bit lane
    per block, so every round is a few dozen big-int operations instead of a Python loop per block."""
    n = nbytes // 64
    lane_ones = int.from_bytes(b"\xff\xff\xff\xff\x00\x00\x00\x00" * n, "little")  # 2^32-1 in every lane
    unit = lane_ones // _M32  # 1 in every lane

    def splat(v: int) -> int:
        return unit * v

    k = struct.unpack("<8I", key)
    nn = struct.unpack("<2I", nonce)
    lo = int.from_bytes(b"".join(struct.pack("<Q", i & _M32) for i in range(n)), "little")
    hi = int.from_bytes(b"".join(struct.pack("<Q", i >> 32) for i in range(n)), "little")
    start = [
        splat(_SALSA_CONSTANTS[0]), splat(k[0]), splat(k[1]), splat(k[2]),
        splat(k[3]), splat(_SALSA_CONSTANTS[1]), splat(nn[0]), splat(nn[1]),
        lo, hi, splat(_SALSA_CONSTANTS[2]), splat(k[4]),
        splat(k[5]), splat(k[6]), splat(k[7]), splat(_SALSA_CONSTANTS[3]),
    ]  # fmt: skip
    x = list(start)
    m = lane_ones

    def quarter(a: int, b: int, c: int, d: int) -> None:
        for dst, s1, s2, r in ((b, a, d, 7), (c, b, a, 9), (d, c, b, 13), (a, d, c, 18)):
            v = (x[s1] + x[s2]) & m
            x[dst] ^= ((v << r) & m) | ((v >> (32 - r)) & m)

    double_round = (
        (0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),  # columns
        (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14),  # rows
    )  # fmt: skip
    for _ in range(10):
        for a, b, c, d in double_round:
            quarter(a, b, c, d)
    out = bytearray(64 * n)
    for w in range(16):
        lanes = ((x[w] + start[w]) & m).to_bytes(8 * n, "little")
        for j in range(4):
            out[w * 4 + j :: 64] = lanes[j::8]
    return bytes(out)


@cache
def _libsodium_stream() -> Callable[[bytes, bytes, int], bytes] | None:
    """Salsa20 from the system's libsodium (Debian: libsodium23), or None if it is not installed."""
    import ctypes  # only when an identity is made or checked (start-up time)
    import ctypes.util

    name = ctypes.util.find_library("sodium")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        fn = lib.crypto_stream_salsa20
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_char_p]
    fn.restype = ctypes.c_int

    def stream(key: bytes, nonce: bytes, nbytes: int) -> bytes:
        buf = ctypes.create_string_buffer(nbytes)
        if fn(buf, nbytes, nonce, key) != 0:
            raise RuntimeError("libsodium crypto_stream_salsa20 failed")
        return buf.raw

    return stream


def salsa20_stream(key: bytes, nonce: bytes, nbytes: int, *, use_libsodium: bool = True) -> bytes:
    """`nbytes` (a multiple of 64) of the Salsa20/20 key stream for a 32-byte key and 8-byte nonce."""
    fast = _libsodium_stream() if use_libsodium else None
    return fast(key, nonce, nbytes) if fast is not None else _salsa20_python(key, nonce, nbytes)


def memory_hard_hash(public_key: bytes, *, use_libsodium: bool = True) -> bytes:
    """ZeroTier's identity hash of a 64-byte public key (the 64-byte digest).

    SHA-512 of the key seeds Salsa20; 2 MiB are filled chaining each 64-byte block into the next, then
    the digest is mixed with data-dependent swaps through that memory, one Salsa20 block per step.
    Words are handled as big-endian integers throughout (swaps and XOR do not care about byte order).
    """
    digest = hashlib.sha512(public_key).digest()
    blocks = _GEN_MEMORY // 64
    steps = _GEN_MEMORY // 16  # two 8-byte words per step
    stream = salsa20_stream(digest[:32], digest[32:40], _GEN_MEMORY + 64 * steps, use_libsodium=use_libsodium)
    # memory block i = key stream block 0 ^ … ^ block i (CBC-like over zeros): a prefix XOR by doubling
    total = int.from_bytes(stream[:_GEN_MEMORY], "big")
    shift = 512
    while shift < blocks * 512:
        total ^= total >> shift
        shift *= 2
    words = list(struct.unpack(f">{_GEN_MEMORY // 8}Q", total.to_bytes(_GEN_MEMORY, "big")))
    frombytes = int.from_bytes
    mix = [frombytes(stream[off : off + 64], "big") for off in range(_GEN_MEMORY, len(stream), 64)]
    shifts = [448 - 64 * i for i in range(8)]
    mask64 = 0xFFFFFFFFFFFFFFFF
    index_mask = _GEN_MEMORY // 8 - 1
    d = frombytes(digest, "big")
    for step in range(steps):
        s = shifts[words[2 * step] & 7]
        idx = words[2 * step + 1] & index_mask
        w = (d >> s) & mask64
        d ^= ((w ^ words[idx]) << s) ^ mix[step]
        words[idx] = w
    return d.to_bytes(64, "big")


@dataclass(frozen=True)
class ZeroTierIdentity:
    """A ZeroTier identity: 40-bit address, 64-byte public key (X25519 ‖ Ed25519), optional private key."""

    address: str  # 10 hex digits
    public: bytes
    private: bytes | None = None

    def public_string(self) -> str:
        return f"{self.address}:0:{self.public.hex()}"

    def secret_string(self) -> str:
        if self.private is None:
            raise ValueError("this identity has no private key")
        return f"{self.public_string()}:{self.private.hex()}"

    @classmethod
    def parse(cls, text: str) -> ZeroTierIdentity:
        """Parse `address:0:public[:private]` (identity.public / identity.secret)."""
        parts = text.strip().split(":")
        if len(parts) not in (3, 4) or parts[1] != "0" or len(parts[0]) != 10:
            raise ValueError(f"not a type-0 ZeroTier identity: {text[:40]!r}…")
        public = bytes.fromhex(parts[2])
        private = bytes.fromhex(parts[3]) if len(parts) == 4 else None
        if len(public) != 64 or (private is not None and len(private) != 64):
            raise ValueError("ZeroTier identity keys must be 64 bytes")
        int(parts[0], 16)
        return cls(parts[0].lower(), public, private)

    def locally_validate(self, *, use_libsodium: bool = True) -> bool:
        """What zerotier-one checks before it accepts an identity: proof of work and address."""
        if _reserved_address(self.address):
            return False
        digest = memory_hard_hash(self.public, use_libsodium=use_libsodium)
        return digest[0] < _HASHCASH_FIRST_BYTE_LESS_THAN and digest[59:].hex() == self.address

    def keys_match(self) -> bool:
        """Whether the private key belongs to the public key (both halves)."""
        if self.private is None:
            return False
        from cryptography.hazmat.primitives import serialization  # only when keys are used (start-up time)
        from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

        dh = x25519.X25519PrivateKey.from_private_bytes(self.private[:32]).public_key()
        ed = ed25519.Ed25519PrivateKey.from_private_bytes(self.private[32:]).public_key()
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        return dh.public_bytes(*raw) + ed.public_bytes(*raw) == self.public


def _reserved_address(address: str) -> bool:
    return address.startswith("ff") or int(address, 16) == 0


def generate_identity(*, use_libsodium: bool = True) -> ZeroTierIdentity:
    """A new identity, searching key pairs until the hash meets ZeroTier's proof of work."""
    from cryptography.hazmat.primitives import serialization  # only when keys are made (start-up time)
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_seed = ed.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    ed_public = ed.public_key().public_bytes(*raw)
    while True:
        dh_private = secrets.token_bytes(32)
        dh_public = x25519.X25519PrivateKey.from_private_bytes(dh_private).public_key().public_bytes(*raw)
        public = dh_public + ed_public
        digest = memory_hard_hash(public, use_libsodium=use_libsodium)
        address = digest[59:].hex()
        if digest[0] < _HASHCASH_FIRST_BYTE_LESS_THAN and not _reserved_address(address):
            return ZeroTierIdentity(address, public, dh_private + ed_seed)


def rfc4193_address(network_id: str, node_id: str) -> ipaddress.IPv6Address:
    """A member's IPv6 address in a network with RFC4193 assignment (`fd` + nwid + `9993` + node id)."""
    nwid = int(network_id, 16).to_bytes(8, "big")
    node = int(node_id, 16).to_bytes(5, "big")
    return ipaddress.IPv6Address(b"\xfd" + nwid + b"\x99\x93" + node)


def node_id_of(value: str) -> str:
    """The node id in an `allowedIps` entry: a member's RFC4193 address or the 10-hex-digit id itself."""
    text = value.strip().lower()
    if len(text) == 10 and all(c in "0123456789abcdef" for c in text):
        return text
    return ipaddress.IPv6Address(text).packed[11:].hex()


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


def apply_script(identity_secret: str) -> str:
    """POSIX sh: install identity, joined networks, controller database and moons into zerotier-one's home.

    Idempotent. A file is (re)installed only when pyclan's rendering of it changed since the last
    run (zerotier-one rewrites its controller database, so the installed copy is not compared), and
    zerotier-one is restarted only then, and only if it is installed.
    """
    return f"""#!/bin/sh
# Managed by pyclan (service zerotier): installs {SRC_DIR} into zerotier-one's home.
set -eu
ZT={ZT_HOME}
SRC={SRC_DIR}
STATE={HOOK_STATE_DIR}/zerotier
changed=0
put() {{  # put SOURCE REL MODE: install SOURCE as $ZT/REL if it changed since the last run
    if [ ! -e "$ZT/$2" ] || ! cmp -s "$1" "$STATE/$2"; then
        mkdir -p "$(dirname "$ZT/$2")" "$(dirname "$STATE/$2")"
        cp "$1" "$ZT/$2.pyclan-tmp" && chmod "$3" "$ZT/$2.pyclan-tmp" && mv "$ZT/$2.pyclan-tmp" "$ZT/$2"
        cp "$1" "$STATE/$2" && chmod 0600 "$STATE/$2"
        changed=1
    fi
}}
drop() {{  # drop REL: remove $ZT/REL (and a member directory next to a network file)
    rm -rf "$ZT/$1" "$STATE/$1"
    case "$1" in *.json) rm -rf "$ZT/${{1%.json}}" "$STATE/${{1%.json}}" ;; esac
    changed=1
}}
mkdir -p "$ZT/networks.d" "$STATE"
chmod 0700 "$ZT" "$STATE"
put {sh_quote(identity_secret)} identity.secret 0600
pub=$(mktemp)
cut -d: -f1-3 {sh_quote(identity_secret)} > "$pub"  # identity.public: the secret without its private part
put "$pub" identity.public 0644
rm -f "$pub"
# join the declared networks; leave networks that are no longer declared (as Clan does)
for f in "$SRC"/join/*; do
    [ -e "$f" ] || continue
    nwid=$(basename "$f")
    [ -e "$ZT/networks.d/$nwid.conf" ] || {{ : > "$ZT/networks.d/$nwid.conf"; changed=1; }}
done
for f in "$ZT"/networks.d/*.conf; do
    [ -e "$f" ] || continue
    nwid=$(basename "$f" .conf)
    case "$nwid" in *.local) continue ;; esac
    [ -e "$SRC/join/$nwid" ] || {{ rm -f "$f" "$ZT/networks.d/$nwid.local.conf"; changed=1; }}
done
# the controller's database: networks and authorised members, as rendered by pyclan
for f in "$SRC"/controller/*.json "$SRC"/controller/*/member/*.json; do
    [ -e "$f" ] || continue
    put "$f" "controller.d/network/${{f#"$SRC"/controller/}}" 0600
done
for f in "$STATE"/controller.d/network/*.json "$STATE"/controller.d/network/*/member/*.json; do
    [ -e "$f" ] || continue
    rel=${{f#"$STATE"/}}
    [ -e "$SRC/controller/${{rel#controller.d/network/}}" ] || drop "$rel"
done
# moons: sign this machine's moon definition with zerotier-idtool when it is installed
for f in "$SRC"/moon/*.json; do
    [ -e "$f" ] || continue
    if command -v zerotier-idtool >/dev/null 2>&1; then
        [ -e "$ZT/moon.json" ] || zerotier-idtool initmoon "$ZT/identity.public" > "$ZT/moon.json"
        endpoints=$(cat "$f")
        sed "s|\\"stableEndpoints\\": *\\[[^]]*\\]|\\"stableEndpoints\\": $endpoints|" \\
            "$ZT/moon.json" > "$ZT/moon.json.new"
        mv "$ZT/moon.json.new" "$ZT/moon.json"
        mkdir -p "$ZT/moons.d"
        (cd "$ZT/moons.d" && zerotier-idtool genmoon "$ZT/moon.json" >/dev/null)
    else
        echo "zerotier: zerotier-idtool is not installed; moon $f is not signed" >&2
    fi
done
if {SYSTEMD_BOOTED} && systemctl cat zerotier-one.service >/dev/null 2>&1; then
    if [ "$changed" = 1 ]; then
        systemctl restart zerotier-one.service
    else
        systemctl start zerotier-one.service
    fi
    if command -v zerotier-cli >/dev/null 2>&1; then
        for f in "$SRC"/orbit/*; do
            [ -e "$f" ] || continue
            moon=$(basename "$f")
            zerotier-cli orbit "$moon" "$moon" >/dev/null || echo "zerotier: cannot orbit moon $moon" >&2
        done
    fi
else
    echo "zerotier: zerotier-one is not installed; its configuration is staged in $ZT" >&2
fi
"""


@service.per_machine
def per_machine(ctx: MachineContext) -> MachineConfig:
    secret = ctx.vars.secret_path(identity_generator_name(ctx.machine.name), IDENTITY_SECRET)
    return (
        MachineConfig()
        .file(f"{SRC_DIR}/apply.sh", apply_script(secret), mode="0755")
        .hook("zerotier", f"sh {SRC_DIR}/apply.sh")
    )
