"""sshd: the OpenSSH server with clan-managed host keys (Clan's `sshd`), for Debian.

Servers get the host key from the per-machine generator `openssh` (`ssh.id_ed25519` secret,
`ssh.id_ed25519.pub` public): `/etc/ssh/sshd_config.d/00-clan-sshd.conf` points `HostKey` at the
secret's path on the host, so the key survives reinstalls and is known before the first
connection. Every member of an instance (servers and clients) gets every server's public key in
`/etc/ssh/ssh_known_hosts` under its machine name, `<machine>.<meta.domain>` and any address the
`internet` service exports for it: no trust-on-first-use inside the clan.

`certificate.searchDomains` adds Clan's SSH certificate authority: a shared `openssh-ca` key
signs each server's host key for `<machine>.<domain>` (generator `openssh-cert`, which needs
`ssh-keygen` on the machine running `pyclan vars generate`), and members trust the CA for
`*.<domain>`.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pyclan.config.machine_config import MachineConfig
from pyclan.errors import ClanError
from pyclan.services.api import InstanceContext, MachineContext, Service, VarsReader
from pyclan.services.library._common import (
    HOOK_STATE_DIR,
    SYSTEMD_BOOTED,
    Ed25519KeyRun,
    RsaKeyRun,
    sh_quote,
    single_line,
)
from pyclan.services.library.internet import machine_targets
from pyclan.vars.model import Generator, GeneratorInput, VarFile

# Named to sort first among the drop-ins: sshd keeps the first value of an option (and presents the
# first host key of a type), so later files such as cloud-init's 50-cloud-init.conf cannot override it.
CONF = "/etc/ssh/sshd_config.d/00-clan-sshd.conf"
KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
CERT_FILE = "/etc/ssh/ssh_host_ed25519_key-cert.pub"
SSHD = "/usr/sbin/sshd"

OPENSSH = "openssh"
ED25519 = "ssh.id_ed25519"
ED25519_PUB = "ssh.id_ed25519.pub"
OPENSSH_RSA = "openssh-rsa"
RSA = "ssh.id_rsa"
RSA_PUB = "ssh.id_rsa.pub"
OPENSSH_CA = "openssh-ca"
CA = "id_ed25519"
CA_PUB = "id_ed25519.pub"
OPENSSH_CERT = "openssh-cert"
CERT = "ssh.id_ed25519-cert.pub"

# sshd options this service writes itself; `settings` may not repeat them (sshd keeps the first).
_MANAGED = {"port": "port", "passwordauthentication": "passwordAuthentication",
            "hostkey": "hostKeys", "hostcertificate": "certificate.searchDomains"}  # fmt: skip
_OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")

service = Service(
    "sshd",
    description="Enables secure remote access to the machine over SSH",
    readme=(
        "OpenSSH server with a clan-generated ed25519 host key (generator `openssh`), key-only login by "
        "default, and every server's host key in /etc/ssh/ssh_known_hosts of every member."
    ),
    categories=["System", "Network"],
)


class Certificate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    searchDomains: list[str] = Field(
        default_factory=list,
        description=(
            "Domains to include in the host certificate; the machine name is prepended to each "
            "(`<machine>.<domain>`). Non-empty enables the clan SSH certificate authority."
        ),
        examples=[["mydomain.com"]],
    )


class RsaHostKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool = Field(default=False, description="Whether to generate an RSA host key too")


class HostKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rsa: RsaHostKey = Field(default_factory=RsaHostKey)


SshdOption = bool | int | str | list[str]


class Server(BaseModel):
    """Settings of the `server` role."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(default=22, ge=1, le=65535, description="Port sshd listens on")
    passwordAuthentication: bool = Field(
        default=False, description="Allow password logins (default: public keys only)"
    )
    hostKeys: HostKeys = Field(default_factory=HostKeys, description="Extra host key types")
    certificate: Certificate = Field(default_factory=Certificate)
    settings: dict[str, SshdOption] = Field(
        default_factory=dict,
        description=(
            "More sshd_config options, written as `Name value` (booleans as yes/no, lists space-separated), "
            "e.g. {\"PermitRootLogin\" = \"prohibit-password\", \"AllowUsers\" = [\"root\", \"alice\"]}"
        ),
    )


class Client(BaseModel):
    """Settings of the `client` role."""

    model_config = ConfigDict(extra="forbid")

    certificate: Certificate = Field(default_factory=Certificate)


# -- generators ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignHostCertRun:
    """Sign the machine's ed25519 host key with the clan CA for `<machine>.<domain>` names."""

    machine: str
    domains: tuple[str, ...]

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        ca = inp.dependencies[OPENSSH_CA][CA]
        pub = inp.dependencies[OPENSSH][ED25519_PUB]
        names = ",".join(f"{self.machine}.{d}" for d in self.domains)
        with tempfile.TemporaryDirectory(prefix="pyclan-sshd-cert-") as tmp:
            ca_path, pub_path = Path(tmp) / "ca", Path(tmp) / "ssh.id_ed25519.pub"
            ca_path.write_bytes(ca if ca.endswith(b"\n") else ca + b"\n")
            ca_path.chmod(0o600)
            pub_path.write_bytes(pub)
            cmd = ["ssh-keygen", "-q", "-s", str(ca_path), "-I", self.machine, "-h", "-n", names, str(pub_path)]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            except FileNotFoundError:
                raise ClanError.single(
                    "vars-error", OPENSSH_CERT,
                    "signing the host certificate needs `ssh-keygen`, which is not installed",
                    hint="install OpenSSH's client tools (Debian: apt install openssh-client) and generate again",
                ) from None
            if done.returncode != 0:
                raise ClanError.single("vars-error", OPENSSH_CERT, f"ssh-keygen failed: {done.stderr.strip()}")
            return {CERT: (Path(tmp) / "ssh.id_ed25519-cert.pub").read_text()}


def openssh_generator() -> Generator:
    return Generator(
        name=OPENSSH,
        files={ED25519: VarFile(secret=True), ED25519_PUB: VarFile(secret=False)},
        run=Ed25519KeyRun(private=ED25519, public=ED25519_PUB),
    )


def _ca_generator() -> Generator:
    return Generator(
        name=OPENSSH_CA,
        share=True,
        files={CA: VarFile(secret=True, deploy=False), CA_PUB: VarFile(secret=False, deploy=False)},
        run=Ed25519KeyRun(private=CA, public=CA_PUB),
    )


def _domains(cert: Certificate, path: str) -> tuple[str, ...]:
    for d in cert.searchDomains:
        if not _DOMAIN.match(d):
            raise ClanError.single(
                "settings-type", f"{path}.certificate.searchDomains",
                f"{d!r} is not a domain name", hint="use a plain domain such as \"mydomain.com\"",
            )
    return tuple(sorted(set(cert.searchDomains)))


def _settings_path(ctx: InstanceContext[Any]) -> str:
    return f"instances.{ctx.instance_name}.roles.{ctx.role_name}.machines.{ctx.machine.name}.settings"


# -- server ------------------------------------------------------------------------------------------


def _option_line(key: str, value: SshdOption, path: str) -> str:
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = " ".join(single_line(v, f"sshd option {key}", path) for v in value)
    else:
        text = single_line(str(value), f"sshd option {key}", path)
    return f"{key} {text}"


def render_config(settings: Server, path: str, host_keys: list[str], certificate: bool) -> str:
    """The text of the drop-in `CONF` (Debian's sshd_config includes the drop-ins first)."""
    lines = [
        "# Managed by pyclan (sshd service). Debian's sshd_config includes the drop-ins first, this one",
        "# sorts first among them, and for each option sshd uses the first value it reads.",
        f"Port {settings.port}",
        f"PasswordAuthentication {'yes' if settings.passwordAuthentication else 'no'}",
    ]
    if not settings.passwordAuthentication:
        lines.append("KbdInteractiveAuthentication no")
    lines.extend(f"HostKey {key}" for key in host_keys)
    if certificate:
        lines.append(f"HostCertificate {CERT_FILE}")
    for key, value in sorted(settings.settings.items()):
        where = f"{path}.settings.{key}"
        if not _OPTION_NAME.match(key):
            raise ClanError.single("settings-type", where, f"{key!r} is not an sshd_config option name",
                                   hint="option names are letters and digits, e.g. \"PermitRootLogin\"")
        if key.lower() in _MANAGED:
            raise ClanError.single("settings-type", where, f"sshd option {key} is set by the sshd service itself",
                                   hint=f"use the setting `{_MANAGED[key.lower()]}` instead")
        if key.lower() == "match":
            raise ClanError.single("settings-type", where, "Match blocks cannot be given in `settings`",
                                   hint="add a file under /etc/ssh/sshd_config.d/ with another service instead")
        lines.append(_option_line(key, value, where))
    return "\n".join(lines) + "\n"


# sshd re-executes itself on reload and does not listen for a moment. Wait (at most ~5 s, never
# failing) until it presents the new ed25519 key on its first listen address, so the connection
# deploy opens next is neither refused nor served by the old configuration.
_WAIT_FOR_NEW_KEY = r"""  if [ -n "$reloaded" ] && command -v ssh-keyscan >/dev/null && command -v ssh-keygen >/dev/null
  then
    want=$(ssh-keygen -y -f __KEY__ | cut -d' ' -f1,2)
    addr=$(""" + SSHD + r""" -T 2>/dev/null | awk '$1 == "listenaddress" { print $2; exit }')
    port=${addr##*:}; host=${addr%:*}; host=${host#[}; host=${host%]}
    case "$host" in 0.0.0.0|'') host=127.0.0.1 ;; ::) host=::1 ;; esac
    i=0
    while [ "$i" -lt 50 ]; do
      got=$(ssh-keyscan -T 1 -t ed25519 -p "$port" "$host" 2>/dev/null | cut -d' ' -f2,3)
      [ "$got" = "$want" ] && break
      sleep 0.1; i=$((i + 1))
    done
  fi
"""


def reload_hook(key_paths: list[str]) -> str:
    """Check the whole sshd configuration, then reload sshd only if config or keys changed."""
    watched = " ".join(sh_quote(p) for p in [CONF, *key_paths])
    return (
        "set -eu\n"
        f"if [ -x {SSHD} ]; then\n"
        "  mkdir -p /run/sshd\n"
        f"  if ! out=$({SSHD} -t 2>&1); then\n"
        '    echo "sshd: the configuration does not pass sshd -t: $out" >&2\n'
        "    exit 1\n"
        "  fi\n"
        "fi\n"
        f"stamp={sh_quote(HOOK_STATE_DIR + '/sshd')}\n"
        f"new=$(cat {watched} | sha256sum | cut -d' ' -f1)\n"
        'old=$(cat "$stamp" 2>/dev/null || true)\n'
        'if [ "$new" != "$old" ]; then\n'
        "  reloaded=\n"
        f"  if {SYSTEMD_BOOTED}; then\n"
        "    systemctl enable ssh.service >/dev/null 2>&1 || true\n"
        "    systemctl reload-or-restart ssh.service && reloaded=1\n"
        "  elif [ -r /run/sshd.pid ]; then\n"
        '    kill -HUP "$(cat /run/sshd.pid)" && reloaded=1\n'
        "  fi\n"
        f"{_WAIT_FOR_NEW_KEY.replace('__KEY__', sh_quote(key_paths[0]))}"
        '  mkdir -p "${stamp%/*}"\n'
        "  printf '%s\\n' \"$new\" > \"$stamp\"\n"
        "fi\n"
    )


@service.role("server", interface=Server, description="Machines running the OpenSSH server")
def server(ctx: InstanceContext[Server]) -> MachineConfig:
    path = _settings_path(ctx)
    domains = _domains(ctx.settings.certificate, path)
    cfg = MachineConfig().package("openssh-server")
    cfg.check("sshd-listens", tcp=ctx.settings.port, timeout=15)  # failing, the host switches back
    # The certificate is public; before `vars generate` has made it, the server runs without it.
    certificate = bool(domains) and ctx.vars.has(OPENSSH_CERT, CERT)
    if certificate:
        cfg.file(CERT_FILE, ctx.vars.public(OPENSSH_CERT, CERT))
    host_keys = [ctx.vars.secret_path(OPENSSH, ED25519)]
    if ctx.settings.hostKeys.rsa.enable:
        host_keys.append(ctx.vars.secret_path(OPENSSH_RSA, RSA))
    cfg.file(CONF, render_config(ctx.settings, path, host_keys, certificate))
    cfg.hook("sshd-reload", reload_hook(host_keys + ([CERT_FILE] if certificate else [])))
    return cfg


@server.generators
def server_generators(ctx: InstanceContext[Server]) -> list[Generator]:
    gens = [openssh_generator()]
    if ctx.settings.hostKeys.rsa.enable:
        gens.append(
            Generator(
                name=OPENSSH_RSA,
                files={RSA: VarFile(secret=True), RSA_PUB: VarFile(secret=False)},
                run=RsaKeyRun(private=RSA, public=RSA_PUB),
            )
        )
    domains = _domains(ctx.settings.certificate, _settings_path(ctx))
    if domains:
        gens.append(_ca_generator())
        gens.append(
            Generator(
                name=OPENSSH_CERT,
                files={CERT: VarFile(secret=False)},
                dependencies=(OPENSSH, OPENSSH_CA),
                validation={"name": ctx.machine.name, "domains": {d: d for d in domains}},
                run=SignHostCertRun(ctx.machine.name, domains),
                runtime_inputs=("ssh-keygen",),
            )
        )
    return gens


# -- client ------------------------------------------------------------------------------------------


@service.role("client", interface=Client, description="Machines that trust the clan's SSH servers")
def client(ctx: InstanceContext[Client]) -> MachineConfig:
    _domains(ctx.settings.certificate, _settings_path(ctx))
    return MachineConfig().package("openssh-client")


@client.generators
def client_generators(ctx: InstanceContext[Client]) -> list[Generator]:
    return [_ca_generator()] if _domains(ctx.settings.certificate, _settings_path(ctx)) else []


# -- every member: known hosts -------------------------------------------------------------------------


def _key_of(value: str) -> str:
    """`type base64` of a public key line (drops the comment)."""
    return " ".join(value.split()[:2])


def _names(machine: str, domain: str, exports: Mapping[str, Any], port: int, own: bool) -> list[str]:
    names = [machine, f"{machine}.{domain}", *(t.host for t in machine_targets(exports, machine))]
    if own:
        names.append("localhost")
    names = list(dict.fromkeys(names))
    return names if port == 22 else [f"[{n}]:{port}" for n in names]


def _server_lines(ctx: MachineContext, vars_: VarsReader, domain: str) -> list[str]:
    lines: list[str] = []
    for _iname, view in sorted(ctx.instances.items()):
        role = view.roles.get("server")
        if role is None:
            continue
        for m, member in sorted(role.machines.items()):
            settings: Server = member.settings
            names = ",".join(_names(m, domain, ctx.exports, settings.port, m == ctx.machine.name))
            keys = [(OPENSSH, ED25519_PUB)]
            if settings.hostKeys.rsa.enable:
                keys.append((OPENSSH_RSA, RSA_PUB))
            for gen, file in keys:
                if vars_.has(gen, file, machine=m):
                    lines.append(f"{names} {_key_of(vars_.public(gen, file, machine=m))}")
    return lines


def _ca_lines(ctx: MachineContext) -> list[str]:
    domains: set[str] = set()
    for view in ctx.instances.values():
        for role in ("server", "client"):
            member = view.roles[role].machines.get(ctx.machine.name) if role in view.roles else None
            if member is not None:
                domains.update(member.settings.certificate.searchDomains)
    if not domains or not ctx.vars.has(OPENSSH_CA, CA_PUB):
        return []
    patterns = ",".join(f"*.{d}" for d in sorted(domains))
    return [f"@cert-authority {patterns} {_key_of(ctx.vars.public(OPENSSH_CA, CA_PUB))}"]


@service.per_machine
def known_hosts(ctx: MachineContext) -> MachineConfig | None:
    domain = str(ctx.meta.get("domain") or "clan")
    lines = list(dict.fromkeys([*_server_lines(ctx, ctx.vars, domain), *_ca_lines(ctx)]))
    if not lines:
        return None  # no host key generated yet
    text = "# Managed by pyclan (sshd service): host keys of the clan's SSH servers\n" + "\n".join(lines) + "\n"
    return MachineConfig().file(KNOWN_HOSTS, text)
