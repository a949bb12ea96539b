"""X.509 certificate authorities and certificates for the pki and certificates services.

Made with the `cryptography` library at `pyclan vars generate` time, so the admin's machine
needs neither openssl nor step-cli. Also the activation hook that makes Debian trust a CA:
the certificate goes to /usr/local/share/ca-certificates, and `update-ca-certificates` adds it
to /etc/ssl/certs (what OpenSSL, GnuTLS, curl and Python use by default).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pyclan.services.library._common import HOOK_STATE_DIR, sh_quote

LOCAL_CA_DIR = "/usr/local/share/ca-certificates"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key(kind: str) -> PrivateKey:
    """`rsa4096` (openssl genrsa 4096, as Clan's pki) or `p256` (as step-cli's EC default)."""
    if kind == "rsa4096":
        return rsa.generate_private_key(public_exponent=65537, key_size=4096)
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r}")


def key_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is neither RSA nor EC")
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(
    common_name: str,
    key: PrivateKey,
    *,
    days: float,
    path_length: int | None = None,
    issuer_key: PrivateKey | None = None,
    issuer: x509.Certificate | None = None,
    permitted_domains: Sequence[str] = (),
    backdate_hours: float = 0,
) -> x509.Certificate:
    """A CA certificate: self-signed (a root) unless `issuer`/`issuer_key` are given (an intermediate)."""
    start = _now() - datetime.timedelta(hours=backdate_hours)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject if issuer is not None else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if permitted_domains:
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=[x509.DNSName(d) for d in permitted_domains],
                                 excluded_subtrees=None),
            critical=True,
        )
    if issuer is not None and issuer_key is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


def issue(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    key: PrivateKey,
    dns_names: Sequence[str],
    *,
    days: float,
) -> x509.Certificate:
    """A TLS server certificate for `dns_names` (the first is the CN), signed by the CA."""
    start = _now() - datetime.timedelta(minutes=5)  # a little slack for clocks that run behind
    return (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def trust_hook(stamp_name: str, ca_files: Sequence[str]) -> str:
    """POSIX sh: run update-ca-certificates when the CA files under /usr/local/share/ca-certificates changed."""
    watched = " ".join(sh_quote(p) for p in sorted(ca_files))
    return (
        "set -eu\n"
        "if ! command -v update-ca-certificates >/dev/null; then\n"
        '  echo "the ca-certificates package is not installed (no update-ca-certificates)" >&2\n'
        "  exit 1\n"
        "fi\n"
        f"stamp={sh_quote(f'{HOOK_STATE_DIR}/{stamp_name}')}\n"
        f"new=$(cat {watched} | sha256sum | cut -d' ' -f1)\n"
        'if [ "$new" != "$(cat "$stamp" 2>/dev/null || true)" ]; then\n'
        "  update-ca-certificates --fresh >/dev/null\n"
        '  mkdir -p "${stamp%/*}"\n'
        "  printf '%s\\n' \"$new\" > \"$stamp\"\n"
        "fi\n"
    )
