"""Taking over a real Clan clan's sops-encrypted vars (`../shared/reference/clan-sops-vars/`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clan_reference import (
    ADMIN_PUBLIC_KEY,
    PUBLIC,
    SOPS_SAYS,
    copy_reference,
    reference_admin_key,
    reference_dir,
    tree_digest,
)

from pyclan.clan import Clan, open_clan
from pyclan.errors import ClanError
from pyclan.vars import age, keys, sops
from pyclan.vars.api import (
    check,
    decrypt_secret,
    decrypt_with_machine_key,
    generate,
    import_from_clan,
    machine_private_key,
    set_value,
)
from pyclan.vars.foreign import scan

from .conftest import VarsClan

SERVICE = Path(__file__).with_name("clantest_service.py")
CLAN_TOML = """\
[meta]
name = "fromclan"

[machines.admin1]
[machines.peer1]

[instances.dummy]
module.name = "clantest"
module.input = "self"
roles.default.machines.admin1 = {}
roles.default.machines.peer1.settings.new_service = true
"""


@dataclass
class ClanClan:
    dir: Path

    def open(self) -> Clan:
        return open_clan(self.dir, {})


@pytest.fixture
def clan_clan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ClanClan]:
    """A pyclan clan whose vars/ and sops/ were written by Clan; the user has only their sops age key."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in (keys.KEY_FILE_ENV, sops.KEY_ENV, "XDG_CONFIG_HOME", "CLAN_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(sops.KEY_FILE_ENV, str(reference_admin_key()))
    root = tmp_path / "clan"
    (root / "services").mkdir(parents=True)
    shutil.copy(SERVICE, root / "services" / "clantest.py")
    (root / "clan.toml").write_text(CLAN_TOML)
    copy_reference(root)
    yield ClanClan(root)


def test_vars_foreign_reported_by_check_and_generate_refuses(clan_clan: ClanClan) -> None:
    before = tree_digest(clan_clan.dir)
    report = check(clan_clan.open())
    foreign = sorted(i.var for i in report.issues if i.kind == "vars-foreign")
    assert foreign == ["admin1/dummy-generator", "peer1/dummy-generator", "peer1/new-service"]
    assert {i.kind for i in report.issues} == {"vars-foreign"}  # no "missing" noise for Clan's secrets
    assert all("pyclan vars import --from-clan" in i.fix for i in report.issues)
    with pytest.raises(ClanError) as err:
        generate(clan_clan.open())
    text = str(err.value)
    assert "pyclan vars import --from-clan" in text and "vars/per-machine/peer1/new-service" in text
    assert "a sops-encrypted secret" in text
    with pytest.raises(ClanError, match="pyclan vars import --from-clan"):
        set_value(clan_clan.open(), "peer1", "new-service/a-secret", b"x")
    assert tree_digest(clan_clan.dir) == before


def test_import_dry_run_shows_everything_and_changes_nothing(clan_clan: ClanClan) -> None:
    before = tree_digest(clan_clan.dir)
    report = import_from_clan(clan_clan.open(), dry_run=True)
    assert report.dry_run is True
    assert {(g.label, g.secret, g.public, g.status) for g in report.generators} == {
        ("admin1/dummy-generator", ("generated-password",), ("host-id",), "current"),
        ("peer1/dummy-generator", ("generated-password",), ("host-id",), "current"),
        ("peer1/new-service", ("a-secret",), ("not-a-secret",), "current"),
    }
    assert report.admins == ["admin"] and report.machine_keys == ["admin1", "peer1"]
    assert tree_digest(clan_clan.dir) == before


def test_reference_imports_losslessly(clan_clan: ClanClan) -> None:
    ref = reference_dir()
    ids = age.parse_identities((ref / "admin-age-key.txt").read_text(), "admin key")
    report = import_from_clan(clan_clan.open())
    assert report.dry_run is False and len(report.generators) == 3
    clan = clan_clan.open()
    # secrets: exactly what sops decrypts; public files byte for byte
    for rel, value in SOPS_SAYS.items():
        _, _, machine, gen, file, _ = rel.split("/")
        assert decrypt_secret(clan, machine, gen, file) == value
        stored = clan_clan.dir / "vars/per-machine" / machine / gen / file
        assert sorted(p.name for p in stored.iterdir()) == ["secret.age", "secret.age.recipients"]
    for rel, value in PUBLIC.items():
        assert (clan_clan.dir / rel).read_bytes() == value == (ref / rel).read_bytes()
    # the admin and the machines keep their keys: the machines can read their own secrets
    assert (clan_clan.dir / "keys/admins/admin.pub").read_text().strip() == ADMIN_PUBLIC_KEY
    for m in ("admin1", "peer1"):
        clan_key = sops.decrypt_binary(ref / f"sops/secrets/{m}-age.key/secret", ids).decode().strip()
        assert machine_private_key(clan, m) == clan_key
        pub = json.loads((ref / f"sops/machines/{m}/key.json").read_text())[0]["publickey"]
        assert (clan_clan.dir / f"keys/machines/{m}.pub").read_text().strip() == pub
    a_secret = clan_clan.dir / "vars/per-machine/peer1/new-service/a-secret/secret.age"
    assert decrypt_with_machine_key(clan, "peer1", a_secret) == b"a-secret"
    # afterwards the vars are complete and current: check is clean, generate has nothing to do
    after = check(clan_clan.open())
    assert after.ok, after.issues
    assert scan(clan_clan.dir) == []
    assert generate(clan_clan.open()).generated == []
    # Clan's sops/ folder is left as it was; importing again finds nothing to do
    assert tree_digest(clan_clan.dir / "sops") == tree_digest(ref / "sops")
    again = import_from_clan(clan_clan.open())
    assert again.generators == [] and again.admins == [] and again.machine_keys == []


def test_import_is_all_or_nothing_and_names_the_tampered_file(clan_clan: ClanClan) -> None:
    path = clan_clan.dir / "vars/per-machine/peer1/new-service/a-secret/secret"
    doc = json.loads(path.read_text())
    doc["sops"]["lastmodified"] = "2025-05-04T12:44:21Z"  # a one-second change breaks the MAC's authenticity
    path.write_text(json.dumps(doc, indent="\t"))
    before = tree_digest(clan_clan.dir)
    with pytest.raises(ClanError) as err:
        import_from_clan(clan_clan.open())
    assert [p.path for p in err.value.problems] == [str(path)]
    assert "sops.mac" in str(err.value)
    assert tree_digest(clan_clan.dir) == before
    assert not (clan_clan.dir / "keys").exists()


def test_import_refuses_a_folder_clan_would_not_write(clan_clan: ClanClan) -> None:
    stray = clan_clan.dir / "vars/per-machine/peer1/new-service/notes.txt"
    stray.write_text("mine")
    before = tree_digest(clan_clan.dir)
    with pytest.raises(ClanError, match="not a var folder"):
        import_from_clan(clan_clan.open())
    assert tree_digest(clan_clan.dir) == before


def test_import_needs_a_key_that_opens_every_secret(clan_clan: ClanClan, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    other.write_text(age.secret_key(age.generate_identity()) + "\n")
    monkeypatch.setenv(sops.KEY_FILE_ENV, str(other))
    before = tree_digest(clan_clan.dir)
    with pytest.raises(ClanError) as err:
        import_from_clan(clan_clan.open())
    assert "none of your age keys is a recipient" in str(err.value)
    assert len(err.value.problems) == 5  # three vars and two machine keys, all named at once
    assert tree_digest(clan_clan.dir) == before


def test_cli_import_dry_run_then_import(clan_clan: ClanClan) -> None:
    vc = VarsClan(clan_clan.dir, clan_clan.dir.parent / "home")
    r = vc.run("vars", "check")
    assert r.returncode == 1 and b"vars-foreign: peer1/new-service" in r.stdout
    r = vc.run("vars", "import", "--from-clan", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert b"would import peer1/new-service: not-a-secret, a-secret (secret) [current]" in r.stdout
    assert b"dry run: nothing was changed" in r.stdout
    r = vc.run("vars", "import", "--from-clan", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["machine_keys"] == ["admin1", "peer1"]
    r = vc.run("vars", "check")
    assert r.returncode == 0, r.stdout
    r = vc.run("vars", "get", "peer1", "new-service/a-secret")
    assert r.stdout == b"a-secret"
    r = vc.run("vars", "import")
    assert r.returncode == 1 and b"--from-clan" in r.stderr


def test_pyclan_own_vars_are_never_foreign(vclan: VarsClan, answers: Path) -> None:
    clan = vclan.open()
    generate(clan, prompt_values=answers)
    set_value(clan, "a", "wg/pub", b"set by hand")
    assert scan(vclan.dir) == []
    # a Clan-style hash (no newline) or a sops file in pyclan's tree is foreign
    (vclan.dir / "vars/per-machine/a/token/.validation-hash").write_text("0" * 64)
    (vclan.dir / "vars/per-machine/b/wg/priv/secret").write_text("{}")
    assert sorted(f.key.label for f in scan(vclan.dir)) == ["a/token", "b/wg"]


def test_a_failure_while_writing_restores_everything(clan_clan: ClanClan, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up at the third folder: the two already replaced and the new keys are undone."""
    import errno

    from pyclan.vars.store import VarsStore

    real_write = VarsStore.write
    calls: list[str] = []

    def failing_write(self: VarsStore, key: object, *args: object, **kwargs: object) -> None:
        calls.append(str(key))
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, key, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(VarsStore, "write", failing_write)
    before = tree_digest(clan_clan.dir)
    with pytest.raises(OSError, match="No space left"):
        import_from_clan(clan_clan.open())
    assert len(calls) == 3
    assert tree_digest(clan_clan.dir) == before
    assert not list((clan_clan.dir / "keys").rglob("*.pub"))
    assert not list((clan_clan.dir / "vars").glob(".import-backup-*"))


def test_import_never_reads_through_a_symlink_out_of_the_clan(clan_clan: ClanClan, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"publickey": "age1qm0p4vf9jvcnn43s6l4prk8zn6cx0ep9gzvevxecv729xz540v8qa742eg"}')
    key_json = clan_clan.dir / "sops/users/admin/key.json"
    key_json.unlink()
    key_json.symlink_to(outside)
    with pytest.raises(ClanError, match="a symlink leading out of the clan"):
        import_from_clan(clan_clan.open())
    key_json.unlink()
    shutil.copy(outside, key_json)
    folder = clan_clan.dir / "vars/per-machine/peer1/new-service"
    shutil.move(folder, tmp_path / "moved")
    folder.symlink_to(tmp_path / "moved")
    with pytest.raises(ClanError, match="symlink; refusing to follow it"):
        import_from_clan(clan_clan.open())


def test_get_of_a_clan_secret_points_at_the_import(clan_clan: ClanClan) -> None:
    from pyclan.vars.api import get

    with pytest.raises(ClanError) as err:
        get(clan_clan.open(), "peer1", "new-service/a-secret")
    assert "pyclan did not write" in str(err.value) and "pyclan vars import --from-clan" in str(err.value)
    # public values Clan wrote read as they are
    _, value = get(clan_clan.open(), "peer1", "new-service/not-a-secret")
    assert value == b"not-a-secret"


def test_shared_generator_and_clan_validation_hashes(vclan: VarsClan, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clan's hash (sha256 of the JSON of `validation`, no newline) decides: current, or made anew."""
    import hashlib

    from clan_reference import write_clan_keys, write_clan_var

    monkeypatch.setenv(sops.KEY_FILE_ENV, str(reference_admin_key()))
    machine_keys = write_clan_keys(vclan.dir, ["a", "b"])
    write_clan_var(vclan.dir, "shared/ca", "key", b"clan ca key", secret=True, machines=machine_keys)
    write_clan_var(vclan.dir, "shared/ca", "cert", b"CERT-clan", secret=False)
    (vclan.dir / "vars/shared/ca/.validation-hash").write_text(hashlib.sha256(b'{"version":1}').hexdigest())
    write_clan_var(vclan.dir, "per-machine/a/token", "token", b"old token", secret=True,
                   machines={"a": machine_keys["a"]})
    (vclan.dir / "vars/per-machine/a/token/.validation-hash").write_text("0" * 64)  # another definition
    report = import_from_clan(vclan.open())
    assert {g.label: g.status for g in report.generators} == {"shared/ca": "current", "a/token": "outdated"}
    assert report.admins == ["admin"] and report.machine_keys == ["a", "b"]
    clan = vclan.open()
    for m in ("a", "b"):  # both machines deploy the shared secret: both can read it
        assert decrypt_with_machine_key(clan, m, vclan.dir / "vars/shared/ca/key/secret.age") == b"clan ca key"
    report_check = check(clan)
    assert not [i for i in report_check.issues if i.var.startswith("shared/ca")]
    assert ("outdated", "a/token") in {(i.kind, i.var) for i in report_check.issues}
    answers = {"pw": {"password": "pw"}}
    done = generate(vclan.open(), prompt_values=answers)
    assert "shared/ca" not in done.generated and "a/token" in done.generated
    assert decrypt_secret(vclan.open(), "a", "ca", "key") == b"clan ca key"
    assert check(vclan.open()).ok
