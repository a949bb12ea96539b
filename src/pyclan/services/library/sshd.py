"""sshd: the OpenSSH server with clan-managed host keys and a clan SSH CA (Clan's `sshd`), for Debian.

Servers get their host key from the per-machine generator `openssh` (`ssh.id_ed25519` secret,
`ssh.id_ed25519.pub` public): `/etc/ssh/sshd_config.d/00-clan-sshd.conf` points `HostKey` at the
secret's path on the host, so the key survives reinstalls and is known before the first connection.
The generator and file names are Clan's, so the vars of an existing Clan clan map onto them.

Certificates (`certificate.enable`, on by default as in Clan): the shared generator `openssh-ca` is the
clan's SSH certificate authority (its private key never leaves the admin's vars); the per-machine
generator `openssh-cert` signs each server's host key for `<machine>.<domain>` with every domain of
`meta.domain` and `certificate.searchDomains`. Servers and clients trust the CA for `*.<domain>` in
`/etc/ssh/ssh_known_hosts` (`@cert-authority`), so a host that joins later is trusted without
trust-on-first-use. Key material is made by the real `ssh-keygen`, as in Clan.

pyclan also lists every server's host key under its machine name, `<machine>.<meta.domain>` and any
address the `internet` service exports for it, in the known hosts of every member (servers and
clients), which covers names outside the CA's domains.

`authorizedKeys` (and, with `generateRootKey`, the generated `sshd-root-key`) are root's keys: they go
to `/etc/ssh/authorized_keys.sshd.d/root`, which sshd reads besides `/root/.ssh/authorized_keys`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pyclan.errors import ClanError
from pyclan.services import (
    Generator,
    GeneratorInput,
    InstanceContext,
    MachineConfig,
    MachineContext,
    RoleView,
    Service,
    VarFile,
    VarsReader,
)
from pyclan.services.library._common import (
    AUTHORIZED_KEYS_CONF,
    HOOK_STATE_DIR,
    SSHD_AUTHORIZED_KEYS_DIR,
    SYSTEMD_BOOTED,
    SshKeygenRun,
    authorized_keys_config,
    sh_quote,
    single_line,
    ssh_keygen,
)
from pyclan.services.library.internet import machine_targets

# Named to sort first among the drop-ins: sshd keeps the first value of an option (and presents the
# first host key of a type), so later files such as cloud-init's 50-cloud-init.conf cannot override it.
CONF = "/etc/ssh/sshd_config.d/00-clan-sshd.conf"
KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
CERT_FILE = "/etc/ssh/ssh_host_ed25519_key-cert.pub"
ROOT_KEYS = f"{SSHD_AUTHORIZED_KEYS_DIR}/root"
SSHD = "/usr/sbin/sshd"

# Clan's generator and file names (clan-core clanServices/sshd).
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
ROOT_KEY = "sshd-root-key"
ROOT_PRIVATE = "id_ed25519"
ROOT_PUB = "id_ed25519.pub"

# sshd options this service writes itself; `settings` may not repeat them (sshd keeps the first).
_MANAGED = {"port": "port", "passwordauthentication": "passwordAuthentication",
            "hostkey": "hostKeys", "hostcertificate": "certificate",
            "authorizedkeysfile": "authorizedKeys"}  # fmt: skip
_OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")

service = Service(
    "sshd",
    description=(
        "Enables secure remote access to the machine over SSH with automatic host key management and "
        "CA-signed host certificates"
    ),
    readme=(
        "OpenSSH server with a clan-generated ed25519 host key (generator `openssh`), key-only login, root's "
        "`authorizedKeys`, and a clan SSH certificate authority (`openssh-ca`) that signs each server's host key "
        "for `<machine>.<domain>` (`openssh-cert`). Clients (and servers) trust the CA in ssh_known_hosts, and "
        "every member knows every server's host key: no trust-on-first-use inside the clan."
    ),
    categories=["Network"],
)

def _domain_names(value: list[str]) -> list[str]:
    for d in value:
        if not _DOMAIN.match(d):
            raise ValueError(f'{d!r} is not a domain name; use a plain domain such as "mydomain.com"')
    return value


_SEARCH_DOMAINS_DOC = (
    "Extra domains for the host certificate besides `meta.domain`; the machine name is prepended to each "
    "(`<machine>.<domain>`)"
)


class ClientCertificate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    searchDomains: list[str] = Field(default=[], description=_SEARCH_DOMAINS_DOC,
                                     examples=[["mydomain.com"]])

    _domains = field_validator("searchDomains")(_domain_names)


class ServerCertificate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool = Field(default=True, description="Create and enable CA-signed host certificates")
    searchDomains: list[str] = Field(default=[], description=_SEARCH_DOMAINS_DOC,
                                     examples=[["mydomain.com"]])

    _domains = field_validator("searchDomains")(_domain_names)


class RsaHostKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool = Field(default=False, description="Whether to generate an RSA host key too")


class HostKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rsa: RsaHostKey = Field(default=RsaHostKey(), description="The RSA host key")


SshdOption = bool | int | str | list[str]
SingleLine = Annotated[str, StringConstraints(pattern=r"^[^\n\r]*$")]  # one authorized_keys line


class Server(BaseModel):
    """Settings of the `server` role."""

    model_config = ConfigDict(extra="forbid")

    authorizedKeys: dict[str, SingleLine] = Field(
        default={},
        description=(
            "SSH public keys authorized for root, by a name of your choice. WARNING: removing them can lock "
            "you out of SSH access to the machine"
        ),
        examples=[{"admin-key": "ssh-ed25519 AAAA..."}],
    )
    generateRootKey: bool = Field(
        default=False, description="Generate an SSH key pair for root access (generator `sshd-root-key`)"
    )
    hostKeys: HostKeys = Field(default=HostKeys(), description="Extra host key types")
    certificate: ServerCertificate = Field(default=ServerCertificate(), description="CA-signed host certificates")
    # pyclan additions (Clan sets these through NixOS options instead):
    port: int = Field(default=22, ge=1, le=65535, description="Port sshd listens on (pyclan addition)")
    passwordAuthentication: bool = Field(
        default=False, description="Allow password logins (default: public keys only, as in Clan)"
    )
    settings: dict[str, SshdOption] = Field(
        default={},
        description=(
            "More sshd_config options, written as `Name value` (booleans as yes/no, lists space-separated), "
            "e.g. {\"PermitRootLogin\" = \"prohibit-password\", \"AllowUsers\" = [\"root\", \"alice\"]} "
            "(pyclan addition)"
        ),
    )


class Client(BaseModel):
    """Settings of the `client` role."""

    model_config = ConfigDict(extra="forbid")

    certificate: ClientCertificate = Field(
        default=ClientCertificate(), description="Which servers' host certificates to trust"
    )


# -- generators ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignHostCertRun:
    """`ssh-keygen -s <ca> -I <machine> -h -n <machine>.<domain>,…` over the machine's host key."""

    machine: str
    domains: tuple[str, ...]

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        ca = inp.dependencies[OPENSSH_CA][CA]
        pub = inp.dependencies[OPENSSH][ED25519_PUB]
        names = ",".join(f"{self.machine}.{d}" for d in self.domains)
        with tempfile.TemporaryDirectory(prefix="pyclan-sshd-cert-") as tmp:
            ca_path, pub_path = Path(tmp) / "ca", Path(tmp) / ED25519_PUB
            ca_path.write_bytes(ca if ca.endswith(b"\n") else ca + b"\n")
            ca_path.chmod(0o600)
            pub_path.write_bytes(pub)
            ssh_keygen(["-q", "-s", str(ca_path), "-I", self.machine, "-h", "-n", names, str(pub_path)], OPENSSH_CERT)
            return {CERT: (Path(tmp) / CERT).read_text()}


def openssh_generator() -> Generator:
    return Generator(
        name=OPENSSH,
        files={ED25519: VarFile(secret=True), ED25519_PUB: VarFile(secret=False)},
        run=SshKeygenRun(OPENSSH, ED25519),
        runtime_inputs=("ssh-keygen",),
    )


def ca_generator() -> Generator:
    return Generator(
        name=OPENSSH_CA,
        share=True,
        files={CA: VarFile(secret=True, deploy=False), CA_PUB: VarFile(secret=False, deploy=False)},
        run=SshKeygenRun(OPENSSH_CA, CA),
        runtime_inputs=("ssh-keygen",),
    )


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _domain(meta: Mapping[str, Any]) -> str:
    return str(meta.get("domain") or "clan")


def server_domains(settings: Server, meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The certificate's domains: `meta.domain` first, then `searchDomains` (Clan's order)."""
    return _unique([_domain(meta), *settings.certificate.searchDomains])


def client_domains(settings: Client, servers: RoleView | None, meta: Mapping[str, Any]) -> tuple[str, ...]:
    """What a client trusts the CA for: `meta.domain`, its own and every server's `searchDomains` (Clan)."""
    extra = list(settings.certificate.searchDomains)
    for _m, member in sorted((servers.machines if servers else {}).items()):
        extra.extend(member.settings.certificate.searchDomains)
    return _unique([_domain(meta), *extra])


def any_certificate(servers: RoleView | None) -> bool:
    """Clan's client trusts the CA when any server of the instance has certificates enabled."""
    return any(member.settings.certificate.enable for member in (servers.machines if servers else {}).values())


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
      got=$(ssh-keyscan -T 1 -t ed25519 -p "$port" -- "$host" 2>/dev/null | cut -d' ' -f2,3)
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


@service.role("server", interface=Server, description=(
    "Runs sshd with persistent host keys and (unless certificate.enable is false) a CA-signed host certificate "
    "for <machine>.<domain>, so clients that trust the CA need no trust-on-first-use"
))
def server(ctx: InstanceContext[Server]) -> MachineConfig:
    path = _settings_path(ctx)
    domains = server_domains(ctx.settings, ctx.meta)
    cfg = MachineConfig().package("openssh-server")
    cfg.check("sshd-listens", tcp=ctx.settings.port, timeout=15)  # failing, the host switches back
    # The certificate is public; before `vars generate` has made it, the server runs without it.
    certificate = ctx.settings.certificate.enable and bool(domains) and ctx.vars.has(OPENSSH_CERT, CERT)
    if certificate:
        cfg.file(CERT_FILE, ctx.vars.public(OPENSSH_CERT, CERT))
    host_keys = [ctx.vars.secret_path(OPENSSH, ED25519)]
    if ctx.settings.hostKeys.rsa.enable:
        host_keys.append(ctx.vars.secret_path(OPENSSH_RSA, RSA))
    cfg.file(CONF, render_config(ctx.settings, path, host_keys, certificate))
    cfg.hook("sshd-reload", reload_hook([*host_keys, AUTHORIZED_KEYS_CONF, *([CERT_FILE] if certificate else [])]))
    return cfg


@server.generators
def server_generators(ctx: InstanceContext[Server]) -> list[Generator]:
    gens = [openssh_generator()]
    if ctx.settings.hostKeys.rsa.enable:
        gens.append(
            Generator(
                name=OPENSSH_RSA,
                files={RSA: VarFile(secret=True), RSA_PUB: VarFile(secret=False)},
                run=SshKeygenRun(OPENSSH_RSA, RSA, key_type="rsa", bits=4096),
                runtime_inputs=("ssh-keygen",),
            )
        )
    if ctx.settings.generateRootKey:
        gens.append(
            Generator(
                name=ROOT_KEY,
                files={ROOT_PRIVATE: VarFile(secret=True), ROOT_PUB: VarFile(secret=False)},
                run=SshKeygenRun(ROOT_KEY, ROOT_PRIVATE, comment=f"root@{ctx.machine.name}"),
                runtime_inputs=("ssh-keygen",),
            )
        )
    if ctx.settings.certificate.enable:
        domains = server_domains(ctx.settings, ctx.meta)
        gens.append(ca_generator())
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


@service.role("client", interface=Client, description=(
    "Trusts the clan's SSH CA in known_hosts for the configured domains, so this machine verifies servers' "
    "host certificates without trust-on-first-use"
))
def client(ctx: InstanceContext[Client]) -> MachineConfig:
    return MachineConfig().package("openssh-client")


@client.generators
def client_generators(ctx: InstanceContext[Client]) -> list[Generator]:
    return [ca_generator()] if any_certificate(ctx.roles.get("server")) else []


# -- every member: known hosts, root's keys -----------------------------------------------------------


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


def trusted_domains(ctx: MachineContext) -> list[str]:
    """The domains this machine trusts the clan CA for, over all its sshd instances (as Clan's roles do)."""
    found: list[str] = []
    me = ctx.machine.name
    for _iname, view in sorted(ctx.instances.items()):
        servers = view.roles.get("server")
        if servers is not None and me in servers.machines:
            mine: Server = servers.machines[me].settings
            if mine.certificate.enable:
                found.extend(server_domains(mine, ctx.meta))
        clients = view.roles.get("client")
        if clients is not None and me in clients.machines and any_certificate(servers):
            found.extend(client_domains(clients.machines[me].settings, servers, ctx.meta))
    return list(dict.fromkeys(found))


def _ca_lines(ctx: MachineContext) -> list[str]:
    domains = trusted_domains(ctx)
    if not domains or not ctx.vars.has(OPENSSH_CA, CA_PUB):
        return []
    patterns = ",".join(f"*.{d}" for d in domains)
    return [f"@cert-authority {patterns} {_key_of(ctx.vars.public(OPENSSH_CA, CA_PUB))}"]


def root_keys(ctx: MachineContext) -> list[str]:
    """root's keys from every instance where this machine is a server: `authorizedKeys` (by name), root key."""
    keys: list[str] = []
    me = ctx.machine.name
    for _iname, view in sorted(ctx.instances.items()):
        servers = view.roles.get("server")
        if servers is None or me not in servers.machines:
            continue
        settings: Server = servers.machines[me].settings
        keys.extend(v for _k, v in sorted(settings.authorizedKeys.items()))
        if settings.generateRootKey and ctx.vars.has(ROOT_KEY, ROOT_PUB):
            keys.append(ctx.vars.public(ROOT_KEY, ROOT_PUB))
    return list(dict.fromkeys(k.strip() for k in keys if k.strip()))


@service.per_machine
def known_hosts(ctx: MachineContext) -> MachineConfig | None:
    domain = _domain(ctx.meta)
    is_server = any(ctx.machine.name in v.roles["server"].machines for v in ctx.instances.values()
                    if "server" in v.roles)
    cfg = authorized_keys_config(ROOT_KEYS, root_keys(ctx)) if is_server else MachineConfig()
    lines = list(dict.fromkeys([*_server_lines(ctx, ctx.vars, domain), *_ca_lines(ctx)]))
    if lines:  # none before any host key is generated
        text = "# Managed by pyclan (sshd service): host keys and CA of the clan's SSH servers\n" + "\n".join(lines)
        cfg.file(KNOWN_HOSTS, text + "\n")
    return cfg
