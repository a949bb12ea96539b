"""certificates: the clan root CA every member trusts, Clan's name-constrained intermediate, host certificates."""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from catalogue_support import Built, check_and_build, example_clan
from cryptography import x509

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library import _x509
from pyclan.services.library.certificates import CA_FILE, CERT_DIR, not_after
from pyclan.vars.api import get

MakeClan = Callable[..., Clan]


def _openssl_verify(tmp: Path, root: bytes, cert: bytes, name: str, untrusted: bytes | None = None) -> str:
    (tmp / "root.pem").write_bytes(root)
    (tmp / "leaf.pem").write_bytes(cert)
    args = ["openssl", "verify", "-CAfile", str(tmp / "root.pem"), "-verify_hostname", name]
    if untrusted is not None:
        (tmp / "mid.pem").write_bytes(untrusted)
        args += ["-untrusted", str(tmp / "mid.pem")]
    done = subprocess.run([*args, str(tmp / "leaf.pem")], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    with pytest.MonkeyPatch.context() as mp:  # the admin key stays set while the tests read secrets
        yield check_and_build(example_clan("certificates", tmp_path_factory.mktemp("certs"), mp))


def test_clans_readme_example_checks_and_builds_and_every_member_trusts_one_root(built: Built) -> None:
    assert built.check.checks == []
    _, root = get(built.clan, "ca", "step-ca/ca.crt")
    for machine in ("ca", "client", "server"):
        gen = built.generations[machine]
        assert gen.objects[gen.manifest.files[CA_FILE].sha256] == root
        assert [h.name for h in gen.manifest.hooks] == ["certificates-trust"]
        assert {"openssl", "ca-certificates"} <= set(gen.manifest.packages)
        assert not any("/step-ca/" in p or "intermediate.key" in p for p in gen.manifest.secrets)
        key = gen.manifest.secrets["/var/lib/pyclan/secrets/certificates-host/host.key"]
        assert (key.group, key.mode) == ("ssl-cert", "0640")
    assert f"{CERT_DIR}/intermediate.crt" in built.generations["ca"].manifest.files


def test_host_certificates_verify_for_machine_dot_tld(built: Built, tmp_path: Path) -> None:
    _, root = get(built.clan, "ca", "step-ca/ca.crt")
    _, server = get(built.clan, "server", "certificates-host/host.crt")
    assert ": OK" in _openssl_verify(tmp_path, root, server, "server.foo")
    assert "hostname mismatch" in _openssl_verify(tmp_path, root, server, "client.foo")
    _, ca = get(built.clan, "ca", "certificates-host/host.crt")
    names = x509.load_pem_x509_certificate(ca).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.DNSName) == ["ca.foo"]  # its name and the CA's name coincide
    assert ": OK" in _openssl_verify(tmp_path, root, ca, "ca.foo")


def test_the_intermediate_may_sign_only_under_its_tlds(built: Built, tmp_path: Path) -> None:
    _, root = get(built.clan, "ca", "step-ca/ca.crt")
    _, mid_pem = get(built.clan, "ca", "step-intermediate-cert/intermediate.crt")
    _, mid_key_pem = get(built.clan, "ca", "step-intermediate-key/intermediate.key")
    mid = x509.load_pem_x509_certificate(mid_pem)
    assert mid.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert mid.not_valid_after_utc - mid.not_valid_before_utc == datetime.timedelta(hours=8760)
    mid_key = _x509.load_key(mid_key_pem)
    inside = _x509.issue(mid_key, mid, _x509.new_key("p256"), ["web.foo"], days=1)
    outside = _x509.issue(mid_key, mid, _x509.new_key("p256"), ["web.bar"], days=1)
    assert ": OK" in _openssl_verify(tmp_path, root, _x509.cert_pem(inside).encode(), "web.foo", mid_pem)
    refused = _openssl_verify(tmp_path, root, _x509.cert_pem(outside).encode(), "web.bar", mid_pem)
    assert "permitted subtree violation" in refused


def test_tlds_default_to_the_clan_domain(make_clan: MakeClan) -> None:
    clan = make_clan("""
[meta]
name = "c"
domain = "lab.test"
[machines.ca]
[machines.web]
[instances.certificates]
roles.ca.machines.ca = {}
roles.default.machines.web = {}
""")
    gens = clan.evaluator.generators()
    assert gens["web"]["certificates-host"].generator.validation == {"names": ["web.lab.test"]}
    assert gens["ca"]["certificates-host"].generator.validation == {"names": ["ca.lab.test"]}
    assert gens["ca"]["step-intermediate-cert"].generator.validation == {"tlds": ["lab.test"], "expire": "8760h"}
    assert "step-intermediate-cert" not in gens["web"]


def test_expire_durations_and_times() -> None:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert not_after("8760h", start) - start == datetime.timedelta(days=365)
    assert not_after("1h30m", start) - start == datetime.timedelta(minutes=90)
    assert not_after("2027-06-01T00:00:00Z", start) == datetime.datetime(2027, 6, 1, tzinfo=datetime.UTC)
    assert not_after(None, start) - start == datetime.timedelta(hours=24)
    with pytest.raises(ValueError, match="neither a duration"):
        not_after("a year", start)


def test_a_bad_expire_names_its_setting(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        _ = make_clan("""
[meta]
name = "c"
[machines.ca]
[instances.certificates]
roles.ca.machines.ca.settings.expire = "soon"
""").resolved
    assert err.value.problems[0].path == "instances.certificates.roles.ca.machines.ca.settings.expire"
