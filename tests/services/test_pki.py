"""pki: a shared root CA, a certificate per endpoint signed by it, trusted by Debian's CA store."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogue_support import check_and_build, example_clan
from cryptography import x509

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library.pki import CA_FILE, CERT_DIR
from pyclan.vars.api import get

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

CLAN = """
[meta]
name = "pki"
domain = "example.com"
[machines.web]
[machines.laptop]
[instances.pki]
roles.default.tags = ["all"]
roles.default.machines.web.settings.endpoints = ["music", "git"]
"""


def _verify(ca: Path, cert: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), "-verify_hostname", name, "-purpose", "sslserver", str(cert)],
        capture_output=True, text=True, check=False,
    )


def test_clans_readme_example_checks_and_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = check_and_build(example_clan("pki", tmp_path, monkeypatch))
    assert built.check.checks == []
    _, ca = get(built.clan, "music", "pki-root-ca/ca.crt")
    assert ca == get(built.clan, "laptop", "pki-root-ca/ca.crt")[1]  # one CA for the clan
    for machine in ("laptop", "music"):
        manifest = built.generations[machine].manifest
        assert built.generations[machine].objects[manifest.files[CA_FILE].sha256] == ca
        key = f"/var/lib/pyclan/secrets/cert-{machine}/{machine}.key"
        assert (manifest.secrets[key].group, manifest.secrets[key].mode) == ("clan-pki", "0640")
        assert not any("pki-root-ca" in p for p in manifest.secrets)  # the CA key never leaves the admin
        assert f"{CERT_DIR}/{machine}.fullchain.crt" in manifest.files
        assert manifest.groups["clan-pki"].system
        (tmp_path / "ca.crt").write_bytes(ca)
        (tmp_path / "host.crt").write_bytes(get(built.clan, machine, f"cert-{machine}/{machine}.crt")[1])
        assert _verify(tmp_path / "ca.crt", tmp_path / "host.crt", f"{machine}.example.com").returncode == 0


def test_endpoint_certificates_verify_for_their_name_only(
    make_clan: MakeClan, generate_vars: Callable[..., Any], tmp_path: Path
) -> None:
    clan = make_clan(CLAN)
    made = generate_vars(clan)
    assert sorted(g for g in clan.evaluator.generators()["web"] if g.startswith("cert-")) == [
        "cert-git", "cert-music", "cert-web"
    ]
    ca = made.public[("web", "pki-root-ca", "ca.crt")]
    (tmp_path / "ca.crt").write_bytes(ca)
    music = made.public[("web", "cert-music", "music.crt")]
    (tmp_path / "music.crt").write_bytes(music)
    assert _verify(tmp_path / "ca.crt", tmp_path / "music.crt", "music.example.com").returncode == 0
    wrong = _verify(tmp_path / "ca.crt", tmp_path / "music.crt", "git.example.com")
    assert wrong.returncode != 0 and "hostname mismatch" in wrong.stdout + wrong.stderr
    cert = x509.load_pem_x509_certificate(music)
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["music.example.com"]
    chain = made.public[("web", "cert-music", "music.fullchain.crt")]
    assert chain == music + ca
    assert made.secret("web", "cert-music", "music.key").startswith(b"-----BEGIN PRIVATE KEY-----")
    gen = clan.evaluator.generators()["web"]["cert-music"].generator
    assert gen.dependencies == ("pki-root-ca",) and gen.validation == {"endpoint": "music", "domain": "example.com"}


def test_the_trust_hook_puts_the_ca_into_debians_bundle(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated
) -> None:
    one = CLAN.split("[machines.web]")[0] + '[machines.laptop]\n[instances.pki]\nroles.default.tags = ["all"]\n'
    generate_vars(make_clan(one))  # one machine: only the CA and its host key are made
    cfg = make_clan(one).evaluator.config("laptop")
    ca = cfg.files[CA_FILE].content
    files = {CA_FILE: ca.encode(), "/root/hook.sh": cfg.hooks["pki-trust"].script.encode()}
    done = isolated(
        "sh /root/hook.sh && sh /root/hook.sh && "
        f"openssl verify -CAfile /etc/ssl/certs/ca-certificates.crt {CA_FILE} && "
        "ls -l /etc/ssl/certs/clan-pki-root-ca.pem",
        files=files,
    )
    assert ": OK" in done.stdout and "/usr/local/share/ca-certificates/clan-pki-root-ca.crt" in done.stdout


def test_nothing_but_the_group_before_vars_exist(make_clan: MakeClan) -> None:
    cfg = make_clan(CLAN).evaluator.config("web")
    assert cfg.files == {} and cfg.hooks == {} and "clan-pki" in cfg.groups


def test_a_bad_endpoint_name_names_its_setting(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        _ = make_clan(CLAN.replace('"music"', '"Music Box"')).resolved
    assert err.value.problems[0].path.endswith("machines.web.settings.endpoints")
