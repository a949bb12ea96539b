"""tor: onion services that make machines reachable over Tor, and Tor clients (Clan's `tor`).

Each `server` gets a v3 onion service `clan_<instance>` whose key comes from the generator
`tor_<instance>`: pyclan makes the ed25519 key itself (in tor's `hs_ed25519_secret_key` file format)
and derives the onion address from it as tor does (rend-spec-v3: base32 of public key, checksum
and version). `hostname` is a secret unless `secretHostname = false`, as in Clan. Clients run
Tor's SOCKS proxy (port 9050) and get `torsocks`.

One `/etc/tor/torrc` per machine lists every onion service of every instance (perMachine); the
hook `tor` copies the keys into `/var/lib/tor/onion/clan_<instance>/` (owned by `debian-tor`, as
tor demands), runs Debian's own `tor --verify-config` and restarts `tor@default.service` when
anything changed. Like Clan, each instance exports `networking.priority = 10` (the slowest network,
tried last) and every server a `peer.hosts` entry that points at its hostname var.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyclan.errors import ClanError
from pyclan.services import (
    Generator,
    GeneratorInput,
    InstanceContext,
    MachineConfig,
    MachineContext,
    NoSettings,
    Service,
    ServiceContext,
    VarFile,
)
from pyclan.services.exports import ExportMap, build_scope_key
from pyclan.services.library._common import HOOK_STATE_DIR, SYSTEMD_BOOTED, sh_quote

TORRC = "/etc/tor/torrc"
DEFAULTS_TORRC = "/usr/share/tor/tor-service-defaults-torrc"
ONION_DIR = "/var/lib/tor/onion"
SECRET_KEY = "hs_ed25519_secret_key"
SOCKS_PORT = 9050
PRIORITY = 10  # Clan's: the lowest priority of the networks (Tor is the slowest)
NETWORK_MODULE = "clan_lib.network.tor"
_ADDR = re.compile(r"^[A-Za-z0-9.:\[\]-]+$")

service = Service(
    "tor",
    description=(
        "Part of the clan networking abstraction to define how to reach machines through the Tor network, "
        "if used has the lowest priority"
    ),
    readme=(
        "Servers get a v3 onion service with a key from vars (generator `tor_<instance>`); clients run Tor's "
        "SOCKS proxy and torsocks. Reaching an onion service needs the internet."
    ),
    categories=["Network"],
    exports_out=("networking", "peer"),
)


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")

    addr: str | None = Field(default=None, description="Address to forward to; default 127.0.0.1")
    port: int | None = Field(default=None, ge=1, le=65535, description="Port to forward to; default: the same port")
    unix: str | None = Field(default=None, description="A unix socket to forward to instead of addr:port")

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str | None) -> str | None:
        if value is not None and not _ADDR.match(value):
            raise ValueError(f"{value!r} is not an IP address or host name")
        return value

    @field_validator("unix")
    @classmethod
    def _unix(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or any(c.isspace() for c in value)):
            raise ValueError(f"{value!r} is not an absolute socket path without spaces")
        return value


class PortMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(ge=1, le=65535, description="The port the onion service offers")
    target: Target = Field(default_factory=Target, description="Where connections to it go")


def _default_mapping() -> list[PortMap | int]:
    return [PortMap(port=22, target=Target(port=22))]


class Server(BaseModel):
    """Settings of the `server` role."""

    model_config = ConfigDict(extra="forbid")

    portMapping: list[PortMap | int] = Field(
        default_factory=_default_mapping,
        description=(
            "Ports the onion service exposes and where each goes: {port, target = {addr, port} or {unix}}; "
            "a plain number maps the port to itself on 127.0.0.1. Default: SSH (22 → 22)"
        ),
    )
    secretHostname: bool = Field(
        default=True,
        description=(
            "Keep the onion hostname a secret var; false makes it a public var (the address is then in the clan "
            "repository: with SSH exposed, anyone who knows it can try to log in)"
        ),
    )


# -- keys ---------------------------------------------------------------------------------------------

_SECRET_HEADER = b"== ed25519v1-secret: type0 ==\x00\x00\x00"
_PUBLIC_HEADER = b"== ed25519v1-public: type0 ==\x00\x00\x00"
_VERSION = b"\x03"


def onion_address(public_key: bytes) -> str:
    """The v3 onion address of an ed25519 public key: base32(key | checksum | version) + ".onion"."""
    checksum = hashlib.sha3_256(b".onion checksum" + public_key + _VERSION).digest()[:2]
    return base64.b32encode(public_key + checksum + _VERSION).decode().lower() + ".onion"


def expanded_secret_key(seed: bytes) -> bytes:
    """tor's 64-byte ed25519 secret key: the clamped scalar and the hash prefix of SHA-512(seed)."""
    digest = bytearray(hashlib.sha512(seed).digest())
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    return bytes(digest)


def onion_keypair() -> tuple[bytes, bytes, str]:
    """(hs_ed25519_secret_key file, hs_ed25519_public_key file, hostname line), as tor writes them."""
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _SECRET_HEADER + expanded_secret_key(seed), _PUBLIC_HEADER + public, onion_address(public) + "\n"


@dataclass(frozen=True)
class OnionKeyRun:
    """Generator run: a fresh onion service key and its hostname."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        secret, _public, hostname = onion_keypair()
        return {SECRET_KEY: secret, "hostname": hostname}


def generator_name(instance: str) -> str:
    return f"tor_{instance}"


# -- roles ----------------------------------------------------------------------------------------------


@service.role(
    "client",
    description=(
        "Runs Tor's SOCKS proxy (port 9050) continuously, with torsocks, to reach other machines over Tor"
    ),
)
def client(ctx: InstanceContext[NoSettings]) -> MachineConfig:
    return MachineConfig().package("tor", "torsocks").check("tor-socks-listens", tcp=SOCKS_PORT, timeout=30)


@service.role(
    "server", interface=Server, description="Sets up a Tor onion service for the machine, making it reachable over Tor"
)
def server(ctx: InstanceContext[Server]) -> MachineConfig:
    _check_instance(ctx.instance_name)
    return MachineConfig().package("tor")


@server.generators
def server_generators(ctx: InstanceContext[Server]) -> list[Generator]:
    return [
        Generator(
            name=generator_name(ctx.instance_name),
            files={SECRET_KEY: VarFile(secret=True), "hostname": VarFile(secret=ctx.settings.secretHostname)},
            run=OnionKeyRun(),
        )
    ]


@server.exports
def server_exports(ctx: InstanceContext[Server]) -> ExportMap:
    var = {"machine": ctx.machine.name, "generator": generator_name(ctx.instance_name), "file": "hostname"}
    return ctx.mk_exports({"peer": {"hosts": [{"var": var}]}})


@service.instance_exports
def networking(ctx: ServiceContext) -> ExportMap:
    return {
        build_scope_key(ctx.service_name, instance): {"networking": {"priority": PRIORITY, "module": NETWORK_MODULE}}
        for instance in ctx.instances
    }


def _check_instance(instance: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", instance):
        raise ClanError.single(
            "service-error", f"instances.{instance}",
            f"the tor instance name '{instance}' cannot name an onion service directory",
            hint="use letters, digits, '_' and '-' in the instance name",
        )


def port_line(mapping: PortMap | int) -> str:
    """One `HiddenServicePort` line of a mapping (NixOS's `map` entries)."""
    entry = PortMap(port=mapping) if isinstance(mapping, int) else mapping
    target = entry.target
    if target.unix is not None:
        return f"HiddenServicePort {entry.port} unix:{target.unix}"
    addr = target.addr or "127.0.0.1"
    return f"HiddenServicePort {entry.port} {addr}:{target.port or entry.port}"


def render_torrc(onion_services: dict[str, Server], client: bool) -> str:
    """The machine's torrc (Debian's unit reads tor-service-defaults-torrc first, then this)."""
    lines = ["# Managed by pyclan (tor service). Debian's tor@default reads " + DEFAULTS_TORRC + " first."]
    if not client:
        lines.append("SocksPort 0")  # no SOCKS proxy on a server that is not also a client
    for instance, settings in sorted(onion_services.items()):
        lines += ["", f"# onion service of instance '{instance}'", f"HiddenServiceDir {ONION_DIR}/clan_{instance}",
                  "HiddenServiceVersion 3"]
        lines += [port_line(m) for m in settings.portMapping]
    return "\n".join(lines) + "\n"


def tor_hook(key_files: dict[str, str]) -> str:
    """Place each onion key where tor wants it, check the config, restart tor when something changed."""
    copies = ""
    for instance, src in sorted(key_files.items()):
        folder = f"{ONION_DIR}/clan_{instance}"
        key, dest = sh_quote(src), sh_quote(f"{folder}/{SECRET_KEY}")
        copies += (
            f"  install -d -o debian-tor -g debian-tor -m 0700 {sh_quote(folder)}\n"
            f"  if ! cmp -s {key} {dest}; then\n"
            # tor derives the public key and hostname from the secret key; stale ones would not match
            f"    rm -f {sh_quote(folder + '/hostname')} {sh_quote(folder + '/hs_ed25519_public_key')}\n"
            f"    install -o debian-tor -g debian-tor -m 0600 {key} {dest}\n"
            "  fi\n"
        )
    watched = " ".join(sh_quote(p) for p in [TORRC, *sorted(key_files.values())])
    return (
        "set -eu\n"
        "if ! getent passwd debian-tor >/dev/null; then\n"
        '  echo "tor: the tor package is not installed (no user debian-tor)" >&2\n'
        "  exit 1\n"
        "fi\n"
        # tor refuses a data directory it does not own; the package makes it like this too
        "install -d -o debian-tor -g debian-tor -m 2700 /var/lib/tor\n"
        f"install -d -o debian-tor -g debian-tor -m 0700 {ONION_DIR}\n"
        "{\n" + (copies or "  :\n") + "}\n"
        f"if ! out=$(tor --defaults-torrc {DEFAULTS_TORRC} -f {TORRC} --RunAsDaemon 0 --verify-config 2>&1); then\n"
        '  echo "tor: the configuration does not pass tor --verify-config: $out" >&2\n'
        "  exit 1\n"
        "fi\n"
        f"stamp={sh_quote(HOOK_STATE_DIR + '/tor')}\n"
        f"new=$(cat {watched} | sha256sum | cut -d' ' -f1)\n"
        f"if {SYSTEMD_BOOTED}; then\n"
        "  systemctl enable tor.service >/dev/null 2>&1 || true\n"
        '  if [ "$new" != "$(cat "$stamp" 2>/dev/null || true)" ]; then\n'
        "    systemctl restart tor@default.service\n"
        "  else\n"
        "    systemctl start tor@default.service\n"
        "  fi\n"
        "fi\n"
        'mkdir -p "${stamp%/*}"\n'
        "printf '%s\\n' \"$new\" > \"$stamp\"\n"
    )


@service.per_machine
def torrc(ctx: MachineContext) -> MachineConfig:
    me = ctx.machine.name
    onion: dict[str, Server] = {}
    client_role = False
    for instance, view in ctx.instances.items():
        if "server" in view.roles and me in view.roles["server"].machines:
            onion[instance] = view.roles["server"].machines[me].settings
        if "client" in view.roles and me in view.roles["client"].machines:
            client_role = True
    keys = {i: ctx.vars.secret_path(generator_name(i), SECRET_KEY) for i in onion}
    return (
        MachineConfig()
        .package("tor")
        .file(TORRC, render_torrc(onion, client_role))
        .hook("tor", tor_hook(keys))
        .check("tor-running", unit="tor@default.service", timeout=15)
    )
