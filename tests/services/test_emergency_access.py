"""emergency-access: root's console password from vars, as sulogin on Debian asks for it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogue_support import check_and_build, example_clan

from pyclan.clan import Clan
from pyclan.config.generators import GeneratorInput
from pyclan.errors import ClanError
from pyclan.services.library._common import sha512_crypt
from pyclan.services.library.emergency_access import HASH_FILE, EmergencyPasswordRun
from pyclan.vars.api import get

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

CLAN = """
[meta]
name = "ea"
[machines.server]
[instances.emergency-access]
roles.default.machines.server = {}
"""


def test_clans_readme_example_checks_and_builds_with_roots_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = check_and_build(example_clan("emergency-access", tmp_path, monkeypatch))
    assert built.check.checks == []
    for machine in ("laptop", "server"):
        _, password = get(built.clan, machine, "emergency-access/password")
        _, hashed = get(built.clan, machine, "emergency-access/password-hash")
        assert hashed.decode() == sha512_crypt(password.decode(), hashed.decode().split("$")[2])
        gen = built.generations[machine]
        assert gen.manifest.users["root"].password_file == HASH_FILE
        assert gen.objects[gen.manifest.files[HASH_FILE].sha256].decode().strip() == hashed.decode()
        assert gen.manifest.files[HASH_FILE].mode == "0600"
        assert gen.manifest.secrets == {}  # the clear-text password is never deployed
    _, other = get(built.clan, "laptop", "emergency-access/password")
    assert other != get(built.clan, "server", "emergency-access/password")[1]  # one password per machine


def test_nothing_is_set_before_vars_are_generated(make_clan: MakeClan) -> None:
    cfg = make_clan(CLAN).evaluator.config("server")
    assert cfg.users == {} and cfg.files == {}
    gen = make_clan(CLAN).evaluator.generators()["server"]["emergency-access"].generator
    assert gen.files["password"].deploy is False and gen.files["password-hash"].secret is False
    assert gen.prompts == {}


def test_the_run_makes_a_long_random_password_and_its_hash() -> None:
    out = EmergencyPasswordRun()(GeneratorInput(machine="server", dependencies={}, prompts={}))
    password, hashed = str(out["password"]), str(out["password-hash"])
    assert password.count("-") == 5 and len(password) == 35
    reference = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", hashed.split("$")[2], "-stdin"], input=password,
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert hashed == reference


def test_debians_chpasswd_takes_the_hash_for_root(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated, etc_upper: Path
) -> None:
    clan = make_clan(CLAN)
    generate_vars(clan)
    cfg = make_clan(CLAN).evaluator.config("server")
    files = {p: f.content.encode() for p, f in cfg.files.items()}
    isolated(f"printf 'root:%s\\n' \"$(cat {HASH_FILE})\" | chpasswd -e", files=files)
    root = next(line for line in (etc_upper / "shadow").read_text().splitlines() if line.startswith("root:"))
    assert root.split(":")[1] == cfg.files[HASH_FILE].content.strip()


def test_another_root_password_is_a_conflict_naming_both(
    make_clan: MakeClan, generate_vars: Callable[..., Any]
) -> None:
    toml = CLAN + '[instances.users-root]\nmodule.name = "users"\nroles.default.machines.server.settings = ' \
        '{ user = "root", prompt = false }\n'
    generate_vars(make_clan(toml))
    with pytest.raises(ClanError) as err:
        make_clan(toml).evaluator.config("server")
    problem = err.value.problems[0]
    assert problem.kind == "config-conflict" and problem.path == "machines.server.users.root"
    assert "emergency-access" in problem.message and "users" in problem.message
