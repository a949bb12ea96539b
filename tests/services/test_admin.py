"""admin (deprecated in Clan): root's keys from allowedKeys, a root password, sshd as the sshd service has it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from catalogue_support import check_and_build, example_clan

from pyclan.clan import Clan
from pyclan.config.generators import GeneratorInput
from pyclan.errors import ClanError
from pyclan.services.library._common import sha512_crypt
from pyclan.services.library.admin import RootPasswordRun
from pyclan.services.library.sshd import CONF

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEFDNnynMbFWatSFdANzbJ8iiEKL7+9ZpDaMLrWRQjyH lhebendanz@wintux"
SECOND = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHEnxyIs+FUNZGzSMqj2ZIuSSnJgdV0Cmdvvm4ftSc7m alice@laptop"
HASH_PATH = "/var/lib/pyclan/secrets/root-password/password-hash"

CLAN = f"""
[meta]
name = "adm"
domain = "example.org"
[machines.jon]
[machines.sara]
[instances.admin]
roles.default.tags = ["all"]
roles.default.settings.allowedKeys = {{ myusersKey = "{KEY}", alice = "{SECOND}" }}
"""


def test_clans_readme_example_checks_with_the_deprecation_warning_and_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = check_and_build(example_clan("admin", tmp_path, monkeypatch), {"root-password": {"password": ""}})
    assert [asdict(c) for c in built.check.checks] == [
        {
            "id": "admin-admin-deprecated",
            "message": "The admin service is deprecated: use the sshd and users services instead (migration guide: "
            "https://clan.lol/docs/unstable/guides/migrations/migrate-admin-service)",
            "severity": "warning",
        }
    ]
    for machine in ("jon", "sara"):
        manifest = built.generations[machine].manifest
        assert "openssh-server" in manifest.packages
        assert {"/root/.ssh/authorized_keys", CONF, "/etc/ssh/ssh_known_hosts2"} <= set(manifest.files)
        assert manifest.users["root"].password_file == HASH_PATH
        assert {HASH_PATH, "/var/lib/pyclan/secrets/openssh/ssh.id_ed25519"} <= set(manifest.secrets)
        assert not any(p.endswith("/root-password/password") for p in manifest.secrets)  # clear text stays home
        keys = built.generations[machine].objects[manifest.files["/root/.ssh/authorized_keys"].sha256]
        assert keys.decode() == KEY + "\n"


def test_pyclan_check_prints_the_warning_and_still_succeeds(tmp_path: Path) -> None:
    (tmp_path / "clan.toml").write_text(CLAN)
    proc = subprocess.run(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(tmp_path), "check"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning: [admin-admin-deprecated] The admin service is deprecated" in proc.stderr


def test_deprecation_warning_false_silences_it(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN + "roles.default.settings.deprecationWarning = false\n")
    assert clan.resolved.checks == []


def test_root_gets_exactly_the_allowed_keys_and_the_password_hash(make_clan: MakeClan) -> None:
    cfg = make_clan(CLAN).evaluator.config("jon")
    root = cfg.users["root"]
    assert root.authorized_keys == (SECOND, KEY)  # sorted by key name: alice, myusersKey
    assert root.hashed_password_file == HASH_PATH and not root.create_home and root.shell is None
    assert cfg.secrets[HASH_PATH].needed_for == "users"
    conf = cfg.files[CONF].content
    assert "PasswordAuthentication no" in conf and "HostKey /var/lib/pyclan/secrets/openssh/ssh.id_ed25519" in conf


def test_generators_as_clans_admin(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN + 'roles.default.settings.rsaHostKey.enable = true\n'
                     'roles.default.settings.certificateSearchDomains = ["example.org"]\n')
    gens = clan.evaluator.generators()["jon"]
    assert sorted(gens) == ["openssh", "openssh-ca", "openssh-cert", "openssh-rsa", "root-password"]
    root = gens["root-password"].generator
    assert (root.prompts["password"].type, root.prompts["password"].persist) == ("hidden", True)
    assert root.files["password"].deploy is False and root.files["password-hash"].neededFor == "users"
    assert gens["openssh-ca"].generator.share
    conf = clan.evaluator.config("jon").files[CONF].content
    assert "HostKey /var/lib/pyclan/secrets/openssh-rsa/ssh.id_rsa" in conf


def test_root_password_run_uses_the_answer_or_a_random_one() -> None:
    given = RootPasswordRun()(GeneratorInput(machine="jon", dependencies={}, prompts={"password": "hunter2 x\n"}))
    assert given["password"] == "hunter2 x"
    hashed = str(given["password-hash"])
    assert hashed == sha512_crypt("hunter2 x", hashed.split("$")[2])
    random = RootPasswordRun()(GeneratorInput(machine="jon", dependencies={}, prompts={"password": ""}))
    assert len(str(random["password"])) >= 20


def test_own_host_key_and_ca_are_known_and_sshd_accepts_the_config(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated
) -> None:
    clan = make_clan(CLAN + 'roles.default.settings.certificateSearchDomains = ["example.org"]\n')
    made = generate_vars(clan, {"root-password": {"password": "pw"}})
    cfg = make_clan(CLAN + 'roles.default.settings.certificateSearchDomains = ["example.org"]\n').evaluator.config(
        "jon"
    )
    known = cfg.files["/etc/ssh/ssh_known_hosts2"].content.splitlines()
    pub = made.public[("jon", "openssh", "ssh.id_ed25519.pub")].decode().split()
    assert f"localhost,jon,jon.example.org {pub[0]} {pub[1]}" in known
    assert any(line.startswith("@cert-authority *.example.org ssh-ed25519 ") for line in known)
    files = {path: spec.content.encode() for path, spec in cfg.files.items()}
    files.update(made.host_files("jon"))
    done = isolated("mkdir -p /run/sshd && /usr/sbin/sshd -t && /usr/sbin/sshd -T", files=files)
    effective = done.stdout.splitlines()
    assert "passwordauthentication no" in effective
    assert "hostcertificate /etc/ssh/ssh_host_ed25519_key-cert.pub" in effective


def test_admin_and_default_sshd_on_one_machine_agree_but_a_custom_port_conflicts(make_clan: MakeClan) -> None:
    both = CLAN + '[instances.sshd]\nroles.server.tags = ["all"]\n'
    cfg = make_clan(both).evaluator.config("jon")
    assert "Port 22" in cfg.files[CONF].content
    with pytest.raises(ClanError) as err:
        make_clan(both + "roles.server.settings.port = 2222\n", name="conflict").evaluator.config("jon")
    assert err.value.problems[0].kind == "config-conflict"
    assert CONF in err.value.problems[0].path


def test_a_bad_key_names_its_setting(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        make_clan(CLAN.replace(SECOND, "ssh-ed25519 not-base64!")).evaluator.config("jon")
    problem = err.value.problems[0]
    assert problem.path == "instances.admin.roles.default.machines.jon.settings.allowedKeys.alice"
    assert "not an OpenSSH public key" in problem.message


def test_resolved_settings_are_clans(make_clan: MakeClan) -> None:
    settings = make_clan(CLAN).resolved.to_json()["machines"]["jon"]["instances"]["admin"]["roles"]["default"]
    assert json.loads(json.dumps(settings["settings"])) == {
        "allowedKeys": {"myusersKey": KEY, "alice": SECOND},
        "rsaHostKey": {"enable": False},
        "certificateSearchDomains": [],
        "deprecationWarning": True,
    }


def test_a_bad_search_domain_names_its_setting(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        make_clan(CLAN + 'roles.default.settings.certificateSearchDomains = ["not a domain"]\n').evaluator.config("jon")
    assert err.value.problems[0].path == "instances.admin.roles.default.machines.jon.settings.certificateSearchDomains"
