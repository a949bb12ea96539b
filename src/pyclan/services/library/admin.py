"""admin: root logs in with the allowed SSH keys, plus a root password from vars (Clan's `admin`).

Clan has deprecated this service in favour of `sshd` + `users`; pyclan keeps it so that old
inventories load, and reports Clan's deprecation as a warning in `pyclan check` (unless
`deprecationWarning = false`).

Every member gets what the `sshd` service's server role gives with default settings (the same
`/etc/ssh/sshd_config.d/00-clan-sshd.conf`, host key generator `openssh`, reload hook), so a
machine in both services gets one identical sshd configuration. `rsaHostKey.enable` and
`certificateSearchDomains` map to sshd's `hostKeys.rsa.enable` and `certificate.searchDomains`.
root's `authorized_keys` become exactly the values of `allowedKeys`, and root's password is the
generator `root-password` (prompted, empty → random; only its hash is deployed). The machine
trusts its own host key (and the clan SSH CA) in `/etc/ssh/ssh_known_hosts2`, which OpenSSH
reads next to `ssh_known_hosts`, so it does not clash with the sshd service's file.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pyclan.errors import ClanError
from pyclan.services import (
    Check,
    Generator,
    GeneratorInput,
    InstanceContext,
    MachineConfig,
    Prompt,
    Service,
    ServiceContext,
    VarFile,
)
from pyclan.services.library import _common, sshd
from pyclan.services.library._common import is_openssh_public_key, random_password, sha512_crypt

ROOT_PASSWORD = "root-password"
KNOWN_HOSTS2 = "/etc/ssh/ssh_known_hosts2"
MIGRATION_GUIDE = "https://clan.lol/docs/unstable/guides/migrations/migrate-admin-service"
_DOMAIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")

service = Service(
    "admin",
    description="Adds a root user with ssh access",
    readme=(
        "Deprecated in Clan (use sshd and users). OpenSSH server as the sshd service configures it, root's "
        "authorized keys from `allowedKeys`, and a root password from the generator `root-password`."
    ),
    categories=["System"],
)


class RsaHostKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool = Field(default=False, description="Generate RSA host key")


class Admin(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    allowedKeys: dict[str, str] = Field(
        default_factory=dict,
        description="The allowed public keys for ssh access to the admin user (root), by a name of your choice",
        examples=[{"key_1": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… alice@laptop"}],
    )
    rsaHostKey: RsaHostKey = Field(default_factory=RsaHostKey, description="Also an RSA host key")
    certificateSearchDomains: list[str] = Field(
        default_factory=list,
        description=(
            "Domains for the SSH host certificate; the machine name is prepended to each (`<machine>.<domain>`). "
            "Non-empty enables the clan SSH certificate authority"
        ),
        examples=[["mydomain.com"]],
    )
    deprecationWarning: bool = Field(
        default=True, description="Report that the admin service is deprecated (in `pyclan check`)"
    )


@dataclass(frozen=True)
class RootPasswordRun:
    """The prompted password (empty: a random one) and its crypt(3) SHA-512 hash."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        password = inp.prompts.get("password", "").replace("\n", "") or random_password()
        return {"password": password, "password-hash": sha512_crypt(password)}


def root_password_generator() -> Generator:
    return Generator(
        name=ROOT_PASSWORD,
        files={
            "password-hash": VarFile(secret=True, neededFor="users"),
            "password": VarFile(secret=True, deploy=False),
        },
        prompts={"password": Prompt(description="Leave empty to generate automatically", type="hidden", persist=True)},
        run=RootPasswordRun(),
    )


def _path(ctx: InstanceContext[Any]) -> str:
    return f"instances.{ctx.instance_name}.roles.{ctx.role_name}.machines.{ctx.machine.name}.settings"


def _as_sshd(ctx: InstanceContext[Admin]) -> InstanceContext[sshd.Server]:
    """This member seen as an sshd server with default settings plus admin's two host-key options."""
    domains = sorted(set(ctx.settings.certificateSearchDomains))
    for domain in domains:
        if not _DOMAIN.match(domain):
            raise ClanError.single(
                "settings-type", f"{_path(ctx)}.certificateSearchDomains",
                f"{domain!r} is not a domain name", hint='use a plain domain such as "mydomain.com"',
            )
    certificate: dict[str, Any] = {"searchDomains": domains}
    certificate_model = getattr(sshd.Server.model_fields["certificate"].annotation, "model_fields", {})
    if "enable" in certificate_model:  # an sshd with Clan's `certificate.enable`: admin's is "any domains"
        certificate["enable"] = bool(domains)
    server = sshd.Server.model_validate(
        {"hostKeys": {"rsa": {"enable": ctx.settings.rsaHostKey.enable}}, "certificate": certificate}
    )
    return dataclasses.replace(ctx, settings=server)  # type: ignore[arg-type,return-value]


def _known_hosts(ctx: InstanceContext[Admin]) -> str | None:
    """The machine's own host key for localhost and its names, and the CA for its search domains."""
    lines: list[str] = []
    if ctx.vars.has(sshd.OPENSSH, sshd.ED25519_PUB):
        domain = str(ctx.meta.get("domain") or "clan")
        names = ",".join(dict.fromkeys(["localhost", ctx.machine.name, f"{ctx.machine.name}.{domain}"]))
        key = " ".join(ctx.vars.public(sshd.OPENSSH, sshd.ED25519_PUB).split()[:2])
        lines.append(f"{names} {key}")
    domains = sorted(set(ctx.settings.certificateSearchDomains))
    if domains and ctx.vars.has(sshd.OPENSSH_CA, sshd.CA_PUB):
        ca = " ".join(ctx.vars.public(sshd.OPENSSH_CA, sshd.CA_PUB).split()[:2])
        lines.append(f"@cert-authority {','.join(f'*.{d}' for d in domains)} {ca}")
    if not lines:
        return None
    return "# Managed by pyclan (admin service): this machine's own host key\n" + "\n".join(lines) + "\n"


def _add_sshd_authorized_keys_dropin(cfg: MachineConfig) -> None:
    """The sshd drop-in for inventory authorized-keys files, where the sshd service has one (its reload hook
    watches it). Emitted identically by every service that uses it, so it merges with sshd's own."""
    make = getattr(_common, "authorized_keys_config", None)
    root_keys = getattr(sshd, "ROOT_KEYS", None)
    if make is None or root_keys is None:
        return
    extra: MachineConfig = make(root_keys, [])
    cfg.files.update(extra.files)
    cfg.hooks.update(extra.hooks)


@service.role("default", interface=Admin, description="Placeholder role to apply the admin service")
def default(ctx: InstanceContext[Admin]) -> MachineConfig:
    for name, key in sorted(ctx.settings.allowedKeys.items()):
        if not is_openssh_public_key(key):
            raise ClanError.single(
                "settings-type", f"{_path(ctx)}.allowedKeys.{name}",
                f"not an OpenSSH public key: {key[:60]!r}",
                hint="use the single line from a .pub file, e.g. 'ssh-ed25519 AAAA… user@host'",
            )
    server_role = sshd.service.roles["server"]
    assert server_role.per_instance is not None
    cfg = server_role.per_instance(_as_sshd(ctx)) or MachineConfig()
    _add_sshd_authorized_keys_dropin(cfg)
    known = _known_hosts(ctx)
    if known is not None:
        cfg.file(KNOWN_HOSTS2, known)
    return cfg.user(
        "root",
        authorized_keys=[ctx.settings.allowedKeys[k] for k in sorted(ctx.settings.allowedKeys)],
        hashed_password_file=ctx.vars.secret_path(ROOT_PASSWORD, "password-hash"),
        create_home=False,
    )


@default.generators
def admin_generators(ctx: InstanceContext[Admin]) -> list[Generator]:
    server_role = sshd.service.roles["server"]
    assert server_role.generators_fn is not None
    return [*server_role.generators_fn(_as_sshd(ctx)), root_password_generator()]


@service.checks
def deprecation(ctx: ServiceContext) -> Sequence[Check]:
    """Clan's deprecation warning, once per instance that has a member with the warning on."""
    out = []
    for name, view in sorted(ctx.instances.items()):
        role = view.roles.get("default")
        if role is not None and any(role.machines[m].settings.deprecationWarning for m in role.machines):
            out.append(
                Check(
                    f"admin-{name}-deprecated",
                    "The admin service is deprecated: use the sshd and users services instead "
                    f"(migration guide: {MIGRATION_GUIDE})",
                    severity="warning",
                )
            )
    return out
