"""pki: a clan-wide root CA, TLS certificates for each machine's endpoints, trusted everywhere (Clan's `pki`).

Static, as in Clan: no daemon, only vars. The shared generator `pki-root-ca` makes the CA
(`ca.key` secret and never deployed, `ca.crt` public); each member gets a generator
`cert-<endpoint>` per endpoint, with `<endpoint>.key` (secret, group `clan-pki`, 0640),
`<endpoint>.crt` and `<endpoint>.fullchain.crt`, for the name `<endpoint>.<meta.domain>`.

Clan takes the endpoints from other services' `endpoints` exports. pyclan declares generators
before exports exist (exports may read vars), so here the endpoints are the machine's own name
(a host certificate for `<machine>.<domain>`) plus the setting `endpoints` (a pyclan addition).
Every member trusts the CA through Debian's `update-ca-certificates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyclan.services import Generator, GeneratorInput, InstanceContext, MachineConfig, Service, VarFile
from pyclan.services.library import _x509

ROOT_CA = "pki-root-ca"
GROUP = "clan-pki"
CA_FILE = f"{_x509.LOCAL_CA_DIR}/clan-pki-root-ca.crt"
CERT_DIR = "/etc/pyclan/pki"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")

service = Service(
    "pki",
    description="PKI certificate infrastructure for clan endpoints",
    readme=(
        "A clan-wide root CA (shared generator `pki-root-ca`, key never deployed), a TLS certificate for "
        "`<endpoint>.<domain>` per endpoint of each member (the machine itself and `endpoints`), and every "
        "member trusts the CA (update-ca-certificates)."
    ),
    categories=["Network"],
    exports_inputs=("endpoints",),
)


class Pki(BaseModel):
    """Settings of the `default` role (Clan's has none; `endpoints` is pyclan's)."""

    model_config = ConfigDict(extra="forbid")

    endpoints: list[str] = Field(
        default_factory=list,
        description=(
            "More endpoint names this machine serves, each certified as `<endpoint>.<meta.domain>` "
            "(pyclan addition: Clan reads them from other services' `endpoints` exports); the machine's own "
            "name is always one"
        ),
        examples=[["music", "git"]],
    )

    @field_validator("endpoints")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _LABEL.match(name):
                raise ValueError(f"{name!r} is not a DNS name (lowercase letters, digits, '-' and '.')")
        return value


@dataclass(frozen=True)
class RootCaRun:
    """The clan's root CA: RSA 4096, ten years, CA:TRUE (Clan's openssl invocation, in Python)."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        key = _x509.new_key("rsa4096")
        cert = _x509.make_ca("Clan Root CA", key, days=3650)
        return {"ca.key": _x509.key_pem(key), "ca.crt": _x509.cert_pem(cert)}


@dataclass(frozen=True)
class EndpointCertRun:
    """A certificate for `<endpoint>.<domain>`, valid a year, signed by the root CA."""

    endpoint: str
    domain: str

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        from cryptography import x509

        ca = inp.dependencies[ROOT_CA]
        ca_key, ca_cert = _x509.load_key(ca["ca.key"]), x509.load_pem_x509_certificate(ca["ca.crt"])
        key = _x509.new_key("rsa4096")
        cert = _x509.issue(ca_key, ca_cert, key, [f"{self.endpoint}.{self.domain}"], days=365)
        crt = _x509.cert_pem(cert)
        return {
            f"{self.endpoint}.key": _x509.key_pem(key),
            f"{self.endpoint}.crt": crt,
            f"{self.endpoint}.fullchain.crt": crt + ca["ca.crt"].decode(),
        }


def root_ca_generator() -> Generator:
    return Generator(
        name=ROOT_CA,
        share=True,
        files={"ca.key": VarFile(secret=True, deploy=False), "ca.crt": VarFile(secret=False)},
        run=RootCaRun(),
    )


def endpoint_generator(endpoint: str, domain: str) -> Generator:
    return Generator(
        name=f"cert-{endpoint}",
        dependencies=(ROOT_CA,),
        files={
            f"{endpoint}.key": VarFile(secret=True, group=GROUP, mode="0640"),
            f"{endpoint}.crt": VarFile(secret=False),
            f"{endpoint}.fullchain.crt": VarFile(secret=False),
        },
        validation={"endpoint": endpoint, "domain": domain},
        run=EndpointCertRun(endpoint, domain),
    )


def _domain(ctx: InstanceContext[Pki]) -> str:
    return str(ctx.meta.get("domain") or "clan")


def endpoints_of(ctx: InstanceContext[Pki]) -> list[str]:
    return sorted({ctx.machine.name, *ctx.settings.endpoints})


@service.role("default", interface=Pki, description="TLS certificate infrastructure (Root CA, endpoint certs)")
def default(ctx: InstanceContext[Pki]) -> MachineConfig:
    cfg = MachineConfig().package("ca-certificates").group(GROUP, system=True)
    if ctx.vars.has(ROOT_CA, "ca.crt"):
        cfg.file(CA_FILE, ctx.vars.public(ROOT_CA, "ca.crt"))
        cfg.hook("pki-trust", _x509.trust_hook("pki-trust", [CA_FILE]))
    for endpoint in endpoints_of(ctx):
        gen = f"cert-{endpoint}"
        for name in (f"{endpoint}.crt", f"{endpoint}.fullchain.crt"):
            if ctx.vars.has(gen, name):
                cfg.file(f"{CERT_DIR}/{name}", ctx.vars.public(gen, name))
    return cfg


@default.generators
def pki_generators(ctx: InstanceContext[Pki]) -> list[Generator]:
    domain = _domain(ctx)
    return [root_ca_generator(), *(endpoint_generator(e, domain) for e in endpoints_of(ctx))]
