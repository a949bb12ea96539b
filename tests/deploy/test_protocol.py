"""The host protocol's data: upload tar, probe and apply answers, target parsing, dry-run diffs."""

from __future__ import annotations

import io
import tarfile

import pytest

from pyclan.build.generation import Generation, empty_generation, generation_of
from pyclan.config.machine_config import MachineConfig, SecretFileSpec
from pyclan.deploy import remote
from pyclan.deploy.diff import compare, needed_old_objects
from pyclan.deploy.transport import parse_target
from pyclan.errors import ClanError

SECRET = "/var/lib/pyclan/secrets/pw/hash"


def _gen(text: str, with_secret: bool = True, digest: str = "d1") -> Generation:
    c = MachineConfig().file("/etc/a", text).file("/etc/b", "same\n")
    c.unit("x.service", "[Service]\nExecStart=/bin/true\n", restart_on=["/etc/a"])
    if with_secret:
        c.secrets[SECRET] = SecretFileSpec(path=SECRET, generator="pw", file="hash")
    return generation_of("m", c, {SECRET: digest})


def test_payload_holds_missing_objects_generation_and_root_only_secrets() -> None:
    gen = _gen("one\n")
    missing = gen.manifest.object_ids()[:1]
    data = remote.payload(gen, missing, {"pw/hash": b"$6$secret"}, empty_generation("m"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert {f"objects/{missing[0]}", "gen/manifest.json", "gen/activate.sh", "gen/paths.list"} <= set(members)
        assert "gen0/activate.sh" in members and "gen0/secrets" in members
        secret = members["gen/secrets/pw/hash"]
        assert (secret.mode, secret.uid, secret.uname) == (0o400, 0, "root")
        assert members["gen/secrets"].mode == 0o700 and members["gen/secrets/pw"].mode == 0o700
        assert members["gen/manifest.json"].mode == 0o600
        fh = tar.extractfile("gen/id")
        assert fh is not None and fh.read().decode().strip() == gen.id
    # the secret value is only in the upload, never in what the build stores
    assert b"$6$secret" not in b"".join(gen.folder_files().values())


def test_probe_answer() -> None:
    p = remote.parse_probe("uid 0\ncurrent 3 abc\njournal 4 def\nmissing 11\nmissing 22\n")
    assert (p.uid, p.current, p.current_id, p.journal, p.journal_id, p.missing) == (0, 3, "abc", 4, "def", ("11", "22"))
    assert not p.up_to_date("abc")
    fresh = remote.parse_probe("uid 0\n")
    assert fresh.current is None and fresh.missing == ()
    assert remote.parse_probe("uid 0\ncurrent 3 abc\n").up_to_date("abc")


def test_apply_answer_with_failure_and_rollback() -> None:
    text = "\n".join([
        "@@pyclan-log", "@@pyclan-step preflight", "@@pyclan-step hook:x", "doing x", "it broke",
        "@@pyclan-failed hook:x 1", "@@pyclan-rollback 2 0", "@@pyclan-step preflight", "@@pyclan-step done",
        "@@pyclan-result 3 1",
    ])
    act = remote.parse_apply(text)
    assert (act.generation, act.status, act.rollback_to, act.rollback_status) == (3, 1, 2, 0)
    assert not act.ok and act.failed_step == "hook:x"
    assert act.step_output() == "doing x\nit broke"
    assert act.steps() == ["preflight", "hook:x"]
    busy = remote.parse_apply("@@pyclan-busy\n")
    assert busy.problem is not None and "still running" in busy.problem
    broken = remote.parse_apply("tar: Unexpected EOF in archive\n")
    assert broken.problem == "tar: Unexpected EOF in archive"


@pytest.mark.parametrize(
    ("spec", "user", "host", "port"),
    [
        ("root@10.0.0.1", "root", "10.0.0.1", None),
        ("server.lan", None, "server.lan", None),
        ("admin@server.lan:2222", "admin", "server.lan", 2222),
        ("root@[fd00::1]:22", "root", "fd00::1", 22),
        ("[fd00::1]", None, "fd00::1", None),
        ("root@host?IdentityFile=x", "root", "host", None),
    ],
)
def test_parse_target(spec: str, user: str | None, host: str, port: int | None) -> None:
    t = parse_target(spec, "m", "--target-host")
    assert (t.user, t.host, t.port) == (user, host, port)


def test_parse_target_rejects_nonsense() -> None:
    with pytest.raises(ClanError, match="cannot read target host"):
        parse_target("root@@x y", "m", "machines.m.deploy.targetHost")
    with pytest.raises(ClanError, match="out of range"):
        parse_target("x:70000", "m", "--target-host")


def test_dry_run_diff_shows_file_content_but_never_secrets() -> None:
    old, new = _gen("one\n", digest="d1"), _gen("two\n", digest="d2")
    needed = needed_old_objects(old.manifest, new.manifest)
    assert needed == [old.manifest.files["/etc/a"].sha256]
    ch = compare(old.manifest, new.manifest, {k: old.objects[k] for k in needed}, new.objects)
    lines = ch.lines()
    assert "changed /etc/a" in lines and "    -one" in lines and "    +two" in lines
    assert f"changed secret {SECRET}" in lines
    assert ch.units_restarted == ["x.service"] and not ch.empty()
    assert not any("/etc/b" in line for line in lines)
    first = compare(None, new.manifest, {}, new.objects)
    assert first.units_started == ["x.service"] and "added /etc/b" in first.lines()
    assert compare(new.manifest, new.manifest, new.objects, new.objects).empty()
    removed = compare(new.manifest, _gen("two\n", with_secret=False).manifest, {}, {})
    assert [f.path for f in removed.files] == [SECRET] and removed.files[0].kind == "removed"
