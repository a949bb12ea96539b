"""sops' file format, read without the sops binary, checked on files Clan's sops wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clan_reference import SOPS_SAYS, copy_reference, reference_dir

from pyclan.errors import ClanError
from pyclan.vars import age, sops


def _admin() -> list[age.Identity]:
    return age.parse_identities((reference_dir() / "admin-age-key.txt").read_text(), "admin key")


def test_every_reference_secret_decrypts_to_what_sops_gives() -> None:
    ref = reference_dir()
    ids = _admin()
    for rel, value in SOPS_SAYS.items():
        assert sops.decrypt_binary(ref / rel, ids) == value
    for m in ("admin1", "peer1"):
        key = sops.decrypt_binary(ref / f"sops/secrets/{m}-age.key/secret", ids).decode()
        (ident,) = age.parse_identities(key, m)
        pub = json.loads((ref / f"sops/machines/{m}/key.json").read_text())[0]["publickey"]
        assert age.public_key(ident) == pub
    # a machine reads its own secrets with its own key, as sops-nix does on the host
    peer1 = age.parse_identities(
        sops.decrypt_binary(ref / "sops/secrets/peer1-age.key/secret", ids).decode(), "peer1")
    assert sops.decrypt_binary(ref / "vars/per-machine/peer1/new-service/a-secret/secret", peer1) == b"a-secret"


def _copy(tmp_path: Path) -> Path:
    return copy_reference(tmp_path) / "vars/per-machine/peer1/new-service/a-secret/secret"


def test_a_changed_value_fails_the_mac_naming_the_file(tmp_path: Path) -> None:
    """Someone holding the data key (any recipient) re-encrypts `data`: the MAC catches it."""
    path = _copy(tmp_path)
    ids = _admin()
    doc = json.loads(path.read_text())
    key = sops.data_key(sops.load(path), ids)
    doc["data"] = sops._seal(b"b-secret", "str", key, "data:")
    path.write_text(json.dumps(doc))
    with pytest.raises(ClanError) as err:
        sops.decrypt_binary(path, ids)
    problem = err.value.problems[0]
    assert problem.path == str(path) and "MAC mismatch" in problem.message


@pytest.mark.parametrize(("field", "change", "message"), [
    ("data", lambda v: v.replace("data:prFl0EJy8bM=", "data:qrFl0EJy8bM="), "data: the value does not decrypt"),
    ("lastmodified", lambda v: "2025-05-04T12:44:21Z", "sops.mac: the value does not decrypt"),
    ("mac", lambda v: v[:30] + ("A" if v[30] != "A" else "B") + v[31:], "sops.mac: the value does not decrypt"),
])
def test_a_tampered_file_fails_naming_the_file(tmp_path: Path, field: str, change: object, message: str) -> None:
    path = _copy(tmp_path)
    doc = json.loads(path.read_text())
    holder = doc if field == "data" else doc["sops"]
    holder[field] = change(holder[field])  # type: ignore[operator]
    path.write_text(json.dumps(doc))
    with pytest.raises(ClanError) as err:
        sops.decrypt_binary(path, _admin())
    assert err.value.problems[0].path == str(path)
    assert message in err.value.problems[0].message


def test_not_a_recipient_and_not_sops(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    with pytest.raises(ClanError, match="none of your age keys is a recipient"):
        sops.decrypt_binary(path, [age.generate_identity()])
    path.write_text("not json")
    with pytest.raises(ClanError, match="not a sops JSON file"):
        sops.decrypt_binary(path, _admin())
    path.write_text('{"data": "x"}')
    with pytest.raises(ClanError, match="no `sops` metadata"):
        sops.decrypt_binary(path, _admin())


def test_written_documents_read_back() -> None:
    ident = age.generate_identity()
    for value in (b"", b"x", b"line\n", "ünïcode".encode(), bytes(range(1, 128))):
        doc = sops.encrypt_binary(value, [age.public_key(ident)])
        path = Path("mem")
        parsed = sops.SopsDocument(path, *_split(json.loads(doc)))
        assert sops.decrypt(parsed, [ident]).raw[("data",)] == value


def _split(doc: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    meta = doc.pop("sops")
    assert isinstance(meta, dict)
    return doc, meta


def test_key_sources_are_found_as_sops_finds_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (sops.KEY_ENV, sops.KEY_FILE_ENV, "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert sops.key_sources() == []
    a, b, c = (age.generate_identity() for _ in range(3))
    default = tmp_path / ".config/sops/age/keys.txt"
    default.parent.mkdir(parents=True)
    default.write_text(f"# created by age-keygen\nAGE-PLUGIN-YUBIKEY-1QQQQQQ\n{age.secret_key(a)}\n")  # plugin: skipped
    assert [s.where for s in sops.key_sources()] == [str(default)]
    named = tmp_path / "named.txt"
    named.write_text(age.secret_key(b) + "\n")
    monkeypatch.setenv(sops.KEY_FILE_ENV, str(named))
    monkeypatch.setenv(sops.KEY_ENV, age.secret_key(c))
    found = sops.key_sources()
    assert [s.where for s in found] == ["$SOPS_AGE_KEY", str(named), str(default)]
    assert [age.public_key(i) for s in found for i in s.identities] == [age.public_key(k) for k in (c, b, a)]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert sops.default_key_file() == tmp_path / "xdg/sops/age/keys.txt"
    monkeypatch.setenv(sops.KEY_FILE_ENV, str(tmp_path / "missing.txt"))
    with pytest.raises(ClanError, match="SOPS_AGE_KEY_FILE names a file that does not exist"):
        sops.key_sources()
