"""`vars set` keeps a generator's files consistent; the admin key falls back to the sops key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pyclan.vars import age, keys, sops
from pyclan.vars.api import check, decrypt_secret, generate, set_value

from .conftest import VarsClan


def test_set_of_a_prompted_value_reruns_its_generator(vclan: VarsClan, answers: Path) -> None:
    generate(vclan.open(), prompt_values=answers)
    hash_of_b = (vclan.dir / "vars/per-machine/b/pw/hash/value").read_bytes()
    r = vclan.run("vars", "set", "a", "pw/password", input=b"a new password")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"set a pw/password (encrypted)\ngenerated a/pw\n"
    clan = vclan.open()
    assert decrypt_secret(clan, "a", "pw", "password") == b"a new password"
    new_hash = (vclan.dir / "vars/per-machine/a/pw/hash/value").read_text().strip()
    assert new_hash == hashlib.sha256(b"a new password").hexdigest()  # the dependent file followed
    assert (vclan.dir / "vars/per-machine/b/pw/hash/value").read_bytes() == hash_of_b  # b's is untouched
    assert check(clan).ok


def test_set_of_a_plain_file_marks_the_generators_other_files_outdated(vclan: VarsClan, answers: Path) -> None:
    generate(vclan.open(), prompt_values=answers)
    set_value(vclan.open(), "a", "wg/pub", b"a public key set by hand")
    report = check(vclan.open())
    own = [i for i in report.issues if i.var.startswith("a/wg/")]
    assert [(i.kind, i.var) for i in own] == [("outdated", "a/wg/priv")]
    assert "set by hand" in own[0].message and "pyclan vars generate -g wg a" in own[0].fix
    assert ("outdated", "a/cert") in [(i.kind, i.var) for i in report.issues]  # a dependent (issue 10 item 5)
    # setting the other file too makes the pair consistent again (by the user's word)
    set_value(vclan.open(), "a", "wg/priv", b"its private key")
    assert not [i for i in check(vclan.open()).issues if i.var.startswith("a/wg/")]
    # a new run replaces the folder and forgets what was set by hand
    set_value(vclan.open(), "a", "wg/priv", b"changed again")
    generate(vclan.open(), ["a"], ["wg"])
    assert check(vclan.open()).ok
    assert not (vclan.dir / "vars/per-machine/a/wg/.set-by-hand").exists()
    assert (vclan.dir / "vars/per-machine/a/wg/pub/value").read_bytes() != b"a public key set by hand"


def test_admin_key_falls_back_to_the_key_sops_uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (keys.KEY_FILE_ENV, sops.KEY_FILE_ENV, sops.KEY_ENV, "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    own = tmp_path / ".config/pyclan/age.key"
    assert keys.admin_key_file() == own  # nothing anywhere: where keygen creates it
    sops_default = tmp_path / ".config/sops/age/keys.txt"
    sops_default.parent.mkdir(parents=True)
    ident = age.generate_identity()
    sops_default.write_text(f"# public key: {age.public_key(ident)}\n{age.secret_key(ident)}\n")
    sops_default.chmod(0o600)
    assert keys.admin_key_file() == sops_default
    named = tmp_path / "clan-admin.txt"
    named.write_text(age.secret_key(age.generate_identity()) + "\n")
    named.chmod(0o600)
    monkeypatch.setenv(sops.KEY_FILE_ENV, str(named))
    assert keys.admin_key_file() == named
    monkeypatch.delenv(sops.KEY_FILE_ENV)
    # keygen reuses the sops key instead of making a new one
    clan = tmp_path / "clan"
    clan.mkdir()
    result = keys.keygen(clan, "alice")
    assert result.created_key is False and result.public_key == age.public_key(ident)
    assert not own.exists()
    own.parent.mkdir(parents=True)
    own.write_text(age.secret_key(age.generate_identity()) + "\n")
    assert keys.admin_key_file() == own  # pyclan's own key wins once it exists
    monkeypatch.setenv(keys.KEY_FILE_ENV, str(named))
    assert keys.admin_key_file() == named
