"""syncthing: folders kept in sync between the peers, with Debian's syncthing (Clan's `syncthing`).

Each peer's identity comes from the generator `syncthing`: pyclan makes the key and self-signed
certificate itself, as `syncthing generate` does (ECDSA P-384, CN=syncthing), and the device id
from the certificate (SHA-256, base32, Luhn check characters, as syncthing computes it), so every
peer knows every other peer's id from the public var `id` before any of them runs.

One daemon per machine (`syncthing.service`, user `syncthing`, home /var/lib/syncthing, as Clan's
NixOS module) serves every instance the machine is a peer of. The hook `syncthing` writes
`config.xml` from the rendered template (the API key from its secret), the key and certificate,
and restarts syncthing when any of them changed. Peers are addressed `dynamic` and
`tcp://<name>.<domain>:22000` as in Clan, plus `tcp://<host>:22000` for every address the
`internet` service knows for them (pyclan addition: Debian hosts may not resolve `<name>.<domain>`).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import quoteattr

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyclan.services import Generator, GeneratorInput, InstanceContext, MachineConfig, MachineContext, Service, VarFile
from pyclan.services.library._common import SYSTEMD_BOOTED, sh_quote, systemd_unit
from pyclan.services.library.internet import machine_targets

GENERATOR = "syncthing"
HOME = "/var/lib/syncthing"
TEMPLATE = "/etc/pyclan/syncthing/config.xml"
UNIT = "syncthing.service"
GUI_PORT = 8384  # GUI and REST API, on 127.0.0.1
SYSCTL = "/etc/sysctl.d/90-pyclan-syncthing.conf"
INOTIFY_WATCHES = 524288
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_DEVICE_ID = re.compile(r"^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$")
API_PLACEHOLDER = "@PYCLAN_SYNCTHING_API_KEY@"

service = Service(
    "syncthing",
    description="Syncthing is a continuous file synchronization program with automatic peer discovery",
    readme=(
        "Every peer runs Debian's syncthing with an identity from vars (generator `syncthing`, public `id`); "
        "the folders are shared with every peer (or the listed devices) and extra devices such as phones."
    ),
    categories=["Network"],
)


class Versioning(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["external", "simple", "staggered", "trashcan"] = Field(description="Versioning type")
    params: dict[str, str] = Field(default_factory=dict, description="Versioning parameters")


class Folder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Path to the folder to sync")
    devices: list[str] = Field(
        default_factory=list,
        description="List of device names that share this folder. Empty list means all peers and extraDevices.",
    )
    ignorePerms: bool = Field(default=False, description="Ignore permission changes")
    rescanIntervalS: int = Field(default=3600, description="Rescan interval in seconds")
    type: Literal["sendreceive", "sendonly", "receiveonly"] = Field(default="sendreceive", description="Folder type")
    versioning: Versioning | None = Field(default=None, description="Versioning configuration")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith(("/", "~")) or "\n" in value or "\0" in value:
            raise ValueError(f"{value!r} is not an absolute path")
        return value


class ExtraDevice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Device ID of the external syncthing device",
                    examples=["P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"])
    addresses: list[str] = Field(default_factory=lambda: ["dynamic"], description="List of addresses for the device")
    name: str = Field(default="", description="Human readable name for the device")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _DEVICE_ID.match(value) or not valid_device_id(value):
            raise ValueError(f"{value!r} is not a syncthing device id (8 groups of 7, with valid check characters)")
        return value


class Peer(BaseModel):
    """Settings of the `peer` role."""

    model_config = ConfigDict(extra="forbid")

    openDefaultPorts: bool = Field(
        default=True,
        description="Whether to open the default syncthing ports in the firewall (no effect: Debian has no "
        "firewall by default)",
    )
    folders: dict[str, Folder] = Field(default_factory=dict, description="Folders to synchronize between all peers")
    extraDevices: dict[str, ExtraDevice] = Field(
        default_factory=dict, description="External syncthing devices not managed by clan (e.g., mobile phones)"
    )


@service.role("peer", interface=Peer, description="A peer in the syncthing cluster that syncs files with other peers.")
def peer(ctx: InstanceContext[Peer]) -> None:
    return None  # one daemon per machine serves every instance: see `daemon` (perMachine)


# -- identity ---------------------------------------------------------------------------------------


def _luhn32(text: str) -> str:
    """syncthing's check character: Luhn mod 32 over the base32 alphabet."""
    factor, total = 1, 0
    for ch in text:
        addend = factor * _B32.index(ch)
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return _B32[(32 - total % 32) % 32]


def device_id(cert_der: bytes) -> str:
    """The device id of a certificate: base32(SHA-256(DER)), a check character per 13, dashes per 7."""
    raw = base64.b32encode(hashlib.sha256(cert_der).digest()).decode().rstrip("=")
    checked = "".join(part + _luhn32(part) for part in (raw[i:i + 13] for i in range(0, 52, 13)))
    return "-".join(checked[i:i + 7] for i in range(0, 56, 7))


def valid_device_id(value: str) -> bool:
    plain = value.replace("-", "")
    return len(plain) == 56 and all(plain[i * 14 + 13] == _luhn32(plain[i * 14:i * 14 + 13]) for i in range(4))


def syncthing_identity() -> tuple[str, str, str]:
    """(key PEM, certificate PEM, device id) like `syncthing generate`: ECDSA P-384, CN=syncthing, 20 years."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Syncthing"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Automatically Generated"),
        x509.NameAttribute(NameOID.COMMON_NAME, "syncthing"),
    ])
    today = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(today).not_valid_after(today + datetime.timedelta(days=20 * 365))
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("syncthing")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), device_id(
        cert.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class IdentityRun:
    """Generator run: key, cert, API key and the public device id."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        key, cert, ident = syncthing_identity()
        api = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        return {"key": key, "cert": cert, "api": api + "\n", "id": ident + "\n"}


def identity_generator() -> Generator:
    return Generator(
        name=GENERATOR,
        files={"key": VarFile(secret=True), "cert": VarFile(secret=True), "api": VarFile(secret=True),
               "id": VarFile(secret=False)},
        run=IdentityRun(),
    )


@service.machine_generators
def generators(ctx: MachineContext) -> list[Generator]:
    return [identity_generator()]


# -- rendering ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    addresses: tuple[str, ...]


def _tcp(host: str) -> str:
    try:
        return f"tcp://[{host}]:22000" if ipaddress.ip_address(host).version == 6 else f"tcp://{host}:22000"
    except ValueError:
        return f"tcp://{host}:22000"


def _peer_devices(ctx: MachineContext, peers: set[str]) -> dict[str, Device]:
    domain = str(ctx.meta.get("domain") or "clan")
    devices: dict[str, Device] = {}
    for name in sorted(peers):
        if not ctx.vars.has(GENERATOR, "id", machine=name):
            continue  # not generated yet: left out, like Clan's empty ids
        extra = [_tcp(t.host) for t in machine_targets(ctx.exports, name)]
        addresses = tuple(dict.fromkeys(["dynamic", f"tcp://{name}.{domain}:22000", *extra]))
        devices[name] = Device(ctx.vars.public(GENERATOR, "id", machine=name).strip(), name, addresses)
    return devices


def _xml_device(device: Device) -> list[str]:
    lines = [f'    <device id={quoteattr(device.id)} name={quoteattr(device.name)} compression="metadata" '
             'introducer="false" skipIntroductionRemovals="false" introducedBy="">']
    lines += [f"        <address>{_text(a)}</address>" for a in device.addresses]
    lines += ["        <autoAcceptFolders>false</autoAcceptFolders>", "    </device>"]
    return lines


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml_folder(folder_id: str, folder: Folder, ids: list[str]) -> list[str]:
    lines = [
        f"    <folder id={quoteattr(folder_id)} label={quoteattr(folder_id)} path={quoteattr(folder.path)} "
        f'type="{folder.type}" rescanIntervalS="{folder.rescanIntervalS}" fsWatcherEnabled="true" '
        f'fsWatcherDelayS="10" ignorePerms="{str(folder.ignorePerms).lower()}" autoNormalize="true">',
        "        <filesystemType>basic</filesystemType>",
    ]
    lines += [f'        <device id={quoteattr(i)} introducedBy=""></device>' for i in ids]
    if folder.versioning is not None:
        lines.append(f"        <versioning type={quoteattr(folder.versioning.type)}>")
        lines += [f"            <param key={quoteattr(k)} val={quoteattr(v)}></param>"
                  for k, v in sorted(folder.versioning.params.items())]
        lines.append("        </versioning>")
    lines.append("    </folder>")
    return lines


def render_config(me: str, devices: Mapping[str, Device], folders: Mapping[str, tuple[Folder, list[str]]]) -> str:
    """syncthing's config.xml (with a placeholder for the API key, which is a secret)."""
    lines = ['<configuration version="36">', f"    <!-- Managed by pyclan (syncthing service) for {_text(me)} -->"]
    for folder_id, (folder, ids) in sorted(folders.items()):
        lines += _xml_folder(folder_id, folder, ids)
    for _name, device in sorted(devices.items()):
        lines += _xml_device(device)
    lines += [
        '    <gui enabled="true" tls="false" debugging="false">',
        f"        <address>127.0.0.1:{GUI_PORT}</address>",
        f"        <apikey>{API_PLACEHOLDER}</apikey>",
        "    </gui>",
        "    <options>",
        "        <listenAddress>default</listenAddress>",
        "        <startBrowser>false</startBrowser>",
        "        <urAccepted>-1</urAccepted>",
        "        <crashReportingEnabled>false</crashReportingEnabled>",
        "        <autoUpgradeIntervalH>0</autoUpgradeIntervalH>",
        "    </options>",
        "</configuration>",
    ]
    return "\n".join(lines) + "\n"


def _unit() -> str:
    return systemd_unit({
        "Unit": {"Description": "Syncthing (pyclan syncthing service)", "Documentation": "man:syncthing(1)",
                 "After": "network.target"},
        "Service": {
            "User": "syncthing", "Group": "syncthing",
            "ExecStart": f"/usr/bin/syncthing serve --no-browser --no-restart --no-upgrade --no-default-folder "
                         f"--logflags=0 --home={HOME}",
            "Restart": "on-failure", "RestartSec": 1, "SuccessExitStatus": "3 4", "RestartForceExitStatus": "3 4",
            "ProtectSystem": "full", "PrivateTmp": True, "NoNewPrivileges": True,
        },
        "Install": {"WantedBy": "multi-user.target"},
    })


def _hook(paths: list[str], secret: Mapping[str, str]) -> str:
    """Install config.xml (with the API key), key and cert for syncthing; restart it if any changed."""
    mkdirs = "".join(
        f"[ -e {sh_quote(p)} ] || install -d -o syncthing -g syncthing -m 0750 {sh_quote(p)}\n" for p in paths
    )
    return (
        "set -eu\n"
        # at least Clan's inotify watches, where this machine may set them (not inside containers)
        "f=/proc/sys/fs/inotify/max_user_watches\n"
        f'if [ -w "$f" ] && [ "$(cat "$f")" -lt {INOTIFY_WATCHES} ]; then\n'
        f'  echo {INOTIFY_WATCHES} > "$f" 2>/dev/null || true\n'
        "fi\n"
        f"install -d -o syncthing -g syncthing -m 0700 {HOME}\n"
        f"{mkdirs}"
        f'api=$(tr -cd "A-Za-z0-9" < {sh_quote(secret["api"])})\n'
        f"tmp=$(mktemp -d)\n"
        f'sed "s/{API_PLACEHOLDER}/$api/" {TEMPLATE} > "$tmp/config.xml"\n'
        f'cp {sh_quote(secret["cert"])} "$tmp/cert.pem"; cp {sh_quote(secret["key"])} "$tmp/key.pem"\n'
        "changed=\n"
        "for f in config.xml cert.pem key.pem; do\n"
        f'  if ! cmp -s "$tmp/$f" {HOME}/"$f"; then\n'
        f'    install -o syncthing -g syncthing -m 0600 "$tmp/$f" {HOME}/"$f"; changed=1\n'
        "  fi\n"
        "done\n"
        'rm -rf "$tmp"\n'
        f"if {SYSTEMD_BOOTED}; then\n"
        f'  if [ -n "$changed" ]; then systemctl restart {UNIT}; else systemctl start {UNIT}; fi\n'
        "fi\n"
    )


@service.per_machine
def daemon(ctx: MachineContext) -> MachineConfig:
    me = ctx.machine.name
    peers: set[str] = set()
    settings: list[Peer] = []
    for _name, view in sorted(ctx.instances.items()):
        role = view.roles.get("peer")
        if role is None or me not in role.machines:
            continue
        peers |= set(role.machines)
        settings.append(role.machines[me].settings)
    devices = _peer_devices(ctx, peers)
    for s in settings:
        for dev_name, extra in sorted(s.extraDevices.items()):
            devices[dev_name] = Device(extra.id, extra.name or dev_name, tuple(extra.addresses))
    folders: dict[str, tuple[Folder, list[str]]] = {}
    for s in settings:
        for folder_id, folder in sorted(s.folders.items()):
            if folder.devices and me not in folder.devices:
                continue
            names = folder.devices or sorted(devices)
            folders[folder_id] = (folder, [devices[n].id for n in names if n in devices])
    cfg = (
        MachineConfig()
        .package("syncthing")
        .group("syncthing", system=True)
        .user("syncthing", group="syncthing", system=True, home=HOME, create_home=False, shell="/usr/sbin/nologin",
              description="Syncthing (pyclan)")
        .file(SYSCTL, f"# Managed by pyclan (syncthing service): inotify watches for big folders\n"
                      f"fs.inotify.max_user_watches = {INOTIFY_WATCHES}\n")
    )
    if not ctx.vars.has(GENERATOR, "id"):
        return cfg  # before `vars generate`: no identity to run with
    cfg.file(TEMPLATE, render_config(me, devices, folders), mode="0644")
    cfg.unit(UNIT, _unit(), start=False)  # the hook starts it once config and keys are in place
    secret = {f: ctx.vars.secret_path(GENERATOR, f) for f in ("api", "cert", "key")}
    paths = sorted({f.path for f, _ in folders.values() if f.path.startswith("/")})
    return (
        cfg.hook("syncthing", _hook(paths, secret))
        .check("syncthing-running", unit=UNIT, timeout=15)
        .check("syncthing-api-listens", tcp=GUI_PORT, timeout=30)
    )
