"""certificates: a clan certificate authority every member trusts (Clan's step-ca based `certificates`).

Clan marks it superseded by `pki`. In Clan the `ca` machine runs step-ca, an ACME server that
issues certificates at run time. Debian 12 does not package step-ca, so pyclan keeps the vars and the
trust, and issues certificates at `vars generate` time instead of over ACME:
- the shared generator `step-ca` is the root CA (EC P-256, one year, path length 1, as Clan's
  template), trusted by every member through `update-ca-certificates`;
- the `ca` machine gets Clan's intermediate CA (`step-intermediate-key`, `step-intermediate-cert`,
  restricted to the `tlds` by name constraints) for `ca.<tld>`;
- every member gets the generator `certificates-host`: a key and a certificate for `<machine>.<tld>`
  for every tld of its instances (and `ca.<tld>` on a CA, which Clan's CA gets over ACME), valid 90
  days (step-ca's default TLS lifetime in Clan), signed by the root.
`acmeEmail` is accepted for Clan inventories; without an ACME server it has no effect.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyclan.services import (
    Generator,
    GeneratorInput,
    InstanceContext,
    InstanceView,
    MachineConfig,
    MachineContext,
    Service,
    VarFile,
)
from pyclan.services.library import _x509

ROOT = "step-ca"
INTERMEDIATE_KEY = "step-intermediate-key"
INTERMEDIATE_CERT = "step-intermediate-cert"
HOST = "certificates-host"
GROUP = "ssl-cert"  # Debian's group for reading TLS private keys
CA_FILE = f"{_x509.LOCAL_CA_DIR}/clan-step-ca.crt"
CERT_DIR = "/etc/pyclan/certificates"
LEAF_HOURS = 2160  # step-ca's defaultTLSCertDuration in Clan's configuration
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_TLD = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")

service = Service(
    "certificates",
    description="Sets up a PKI certificate chain using step-ca",
    readme=(
        "A clan root CA (generator `step-ca`) trusted by every member, Clan's intermediate CA on the `ca` "
        "machine, and a certificate for `<machine>.<tld>` per member, issued at vars generate time "
        "(Debian 12 has no step-ca for ACME)."
    ),
    categories=["Network"],
)


_EMAIL = "Email address for the ACME account and the CA's correspondence (no effect in pyclan: no ACME server)"


class CaSettings(BaseModel):
    """Settings of the `ca` role."""

    model_config = ConfigDict(extra="forbid")

    acmeEmail: str = Field(default="none@none.tld", description=_EMAIL)
    tlds: list[str] = Field(
        default_factory=list,
        description="Top level domains of this CA: certificates are issued and trusted for `*.<tld>`; "
        "default: [meta.domain]",
        examples=[["foo"]],
    )
    expire: str | None = Field(
        default="8760h",
        description="When the intermediate certificate expires: a duration such as 8760h, or an RFC 3339 time; "
        "null: 24h (step's default)",
        examples=["8760h"],
    )

    @field_validator("tlds")
    @classmethod
    def _tlds(cls, value: list[str]) -> list[str]:
        for tld in value:
            if not _TLD.match(tld):
                raise ValueError(f"{tld!r} is not a domain (lowercase letters, digits, '-' and '.')")
        return value

    @field_validator("expire")
    @classmethod
    def _expire(cls, value: str | None) -> str | None:
        if value is not None:
            not_after(value, datetime.datetime.now(datetime.UTC))
        return value


class DefaultSettings(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    acmeEmail: str = Field(default="none@none.tld", description=_EMAIL)


def not_after(expire: str | None, start: datetime.datetime) -> datetime.datetime:
    """The end of validity for `expire`: a Go-style duration (`8760h`, `90m`) or an RFC 3339 time."""
    if expire is None:
        return start + datetime.timedelta(hours=24)
    match = _DURATION.match(expire)
    if match and any(match.groups()):
        h, m, s = (int(g or 0) for g in match.groups())
        return start + datetime.timedelta(hours=h, minutes=m, seconds=s)
    try:
        when = datetime.datetime.fromisoformat(expire)
    except ValueError:
        raise ValueError(f"{expire!r} is neither a duration like 8760h nor an RFC 3339 time") from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


# -- generators -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootRun:
    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        key = _x509.new_key("p256")
        cert = _x509.make_ca("Clan Root CA", key, days=365, path_length=1, backdate_hours=12)
        return {"ca.key": _x509.key_pem(key), "ca.crt": _x509.cert_pem(cert)}


@dataclass(frozen=True)
class IntermediateKeyRun:
    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        return {"intermediate.key": _x509.key_pem(_x509.new_key("p256"))}


@dataclass(frozen=True)
class IntermediateCertRun:
    tlds: tuple[str, ...]
    expire: str | None

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        from cryptography import x509

        root_key = _x509.load_key(inp.dependencies[ROOT]["ca.key"])
        root = x509.load_pem_x509_certificate(inp.dependencies[ROOT]["ca.crt"])
        key = _x509.load_key(inp.dependencies[INTERMEDIATE_KEY]["intermediate.key"])
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=12)
        days = (not_after(self.expire, start) - start) / datetime.timedelta(days=1)
        cert = _x509.make_ca("Clan Intermediate CA", key, days=days, path_length=0, issuer=root,
                             issuer_key=root_key, permitted_domains=self.tlds, backdate_hours=12)
        return {"intermediate.crt": _x509.cert_pem(cert)}


@dataclass(frozen=True)
class HostCertRun:
    names: tuple[str, ...]

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        from cryptography import x509

        root_key = _x509.load_key(inp.dependencies[ROOT]["ca.key"])
        root_pem = inp.dependencies[ROOT]["ca.crt"]
        key = _x509.new_key("p256")
        cert = _x509.issue(root_key, x509.load_pem_x509_certificate(root_pem), key, self.names,
                           days=LEAF_HOURS / 24)
        crt = _x509.cert_pem(cert)
        return {"host.key": _x509.key_pem(key), "host.crt": crt, "host.fullchain.crt": crt + root_pem.decode()}


def root_generator() -> Generator:
    return Generator(
        name=ROOT, share=True,
        files={"ca.key": VarFile(secret=True, deploy=False), "ca.crt": VarFile(secret=False)},
        run=RootRun(),
    )


def effective_tlds(settings: CaSettings, meta_domain: str) -> tuple[str, ...]:
    return tuple(sorted(set(settings.tlds))) if settings.tlds else (meta_domain,)


def _domain(meta: Mapping[str, Any]) -> str:
    return str(meta.get("domain") or "clan")


def _instance_tlds(view: InstanceView, meta_domain: str) -> set[str]:
    ca = view.roles.get("ca")
    found: set[str] = set()
    for member in (ca.machines.values() if ca is not None else ()):
        found.update(effective_tlds(member.settings, meta_domain))
    return found or {meta_domain}


def host_names(ctx: MachineContext) -> tuple[str, ...]:
    """`<machine>.<tld>` for every tld of the machine's instances, and `ca.<tld>` for a CA's own tlds."""
    domain = _domain(ctx.meta)
    names: set[str] = set()
    for view in ctx.instances.values():
        names |= {f"{ctx.machine.name}.{tld}" for tld in _instance_tlds(view, domain)}
        ca = view.roles.get("ca")
        if ca is not None and ctx.machine.name in ca.machines:
            names |= {f"ca.{tld}" for tld in effective_tlds(ca.machines[ctx.machine.name].settings, domain)}
    mine = sorted(n for n in names if not n.startswith("ca."))
    return tuple(mine + sorted(n for n in names if n.startswith("ca.")))  # the machine's own name first (CN)


@service.machine_generators
def machine_generators(ctx: MachineContext) -> Sequence[Generator]:
    names = host_names(ctx)
    host = Generator(
        name=HOST,
        dependencies=(ROOT,),
        files={
            "host.key": VarFile(secret=True, group=GROUP, mode="0640"),
            "host.crt": VarFile(secret=False),
            "host.fullchain.crt": VarFile(secret=False),
        },
        validation={"names": list(names)},
        run=HostCertRun(names),
    )
    return [root_generator(), host]


@service.per_machine
def trust(ctx: MachineContext) -> MachineConfig:
    cfg = MachineConfig().package("openssl", "ca-certificates").group(GROUP, system=True)
    if ctx.vars.has(ROOT, "ca.crt"):
        cfg.file(CA_FILE, ctx.vars.public(ROOT, "ca.crt"))
        cfg.hook("certificates-trust", _x509.trust_hook("certificates-trust", [CA_FILE]))
    for name in ("host.crt", "host.fullchain.crt"):
        if ctx.vars.has(HOST, name):
            cfg.file(f"{CERT_DIR}/{name}", ctx.vars.public(HOST, name))
    return cfg


# -- roles -----------------------------------------------------------------------------------------------


@service.role("ca", interface=CaSettings,
              description="A certificate authority that issues and signs certificates for other machines.")
def ca(ctx: InstanceContext[CaSettings]) -> MachineConfig:
    cfg = MachineConfig()
    if ctx.vars.has(INTERMEDIATE_CERT, "intermediate.crt"):
        cfg.file(f"{CERT_DIR}/intermediate.crt", ctx.vars.public(INTERMEDIATE_CERT, "intermediate.crt"))
    return cfg


@ca.generators
def ca_generators(ctx: InstanceContext[CaSettings]) -> list[Generator]:
    tlds = effective_tlds(ctx.settings, _domain(ctx.meta))
    return [
        Generator(name=INTERMEDIATE_KEY, files={"intermediate.key": VarFile(secret=True, deploy=False)},
                  run=IntermediateKeyRun()),
        Generator(
            name=INTERMEDIATE_CERT,
            dependencies=(ROOT, INTERMEDIATE_KEY),
            files={"intermediate.crt": VarFile(secret=False)},
            validation={"tlds": list(tlds), "expire": ctx.settings.expire},
            run=IntermediateCertRun(tlds, ctx.settings.expire),
        ),
    ]


@service.role("default", interface=DefaultSettings,
              description="A machine that trusts the CA and can get certificates issued by it.")
def default(ctx: InstanceContext[DefaultSettings]) -> None:
    return None  # the trust and the host certificate come from the per-machine part
