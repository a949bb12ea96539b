"""Build: MachineConfig → manifest, objects, activation script (no hosts needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pyclan.build import activation
from pyclan.build.generation import empty_generation, generation_of, store
from pyclan.build.manifest import check_path
from pyclan.config.machine_config import FileSpec, MachineConfig, SecretFileSpec
from pyclan.errors import ClanError

SECRET = "/var/lib/pyclan/secrets/pw/hash"
UNIT = "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"


def config(message: str = "hi") -> MachineConfig:
    c = MachineConfig().file("/etc/app/conf", message + "\n").package("hello")
    c.user("alice", groups=["team"], authorized_keys=["ssh-ed25519 AAAA alice"], hashed_password_file=SECRET)
    c.group("team", members=["alice", "www-data"])
    c.unit("app.service", UNIT, restart_on=["/etc/app/conf", SECRET])
    c.hook("b", "echo b", after=["a"])
    c.hook("a", "echo a")
    c.secrets[SECRET] = SecretFileSpec(path=SECRET, generator="pw", file="hash", mode="0400")
    return c


def test_same_config_same_id_and_every_part_is_resolved() -> None:
    gen = generation_of("m", config(), {SECRET: "d1"})
    again = generation_of("m", config(), {SECRET: "d1"})
    assert gen.id == again.id and len(gen.id) == 64
    m = gen.manifest
    assert m.managed_paths() == [
        "/etc/app/conf",
        "/etc/systemd/system/app.service",
        "/etc/systemd/system/multi-user.target.wants/app.service",
        "/home/alice/.ssh/authorized_keys",
    ]
    assert m.links["/etc/systemd/system/multi-user.target.wants/app.service"] == "/etc/systemd/system/app.service"
    keys = m.files["/home/alice/.ssh/authorized_keys"]
    assert (keys.owner, keys.group, keys.mode) == ("alice", "alice", "0600")
    assert gen.objects[keys.sha256] == b"ssh-ed25519 AAAA alice\n"
    assert m.users["alice"].groups == ("team",)
    assert m.groups["team"].members == ("www-data",)  # alice is handled through her own groups
    assert [h.name for h in m.hooks] == ["a", "b"]
    assert set(m.object_ids()) == set(gen.objects)


def test_a_unit_restarts_when_its_file_or_secret_changes_but_not_otherwise() -> None:
    base = generation_of("m", config(), {SECRET: "d1"}).manifest
    other_file = config()
    other_file.file("/etc/other", "x")
    unchanged = generation_of("m", other_file, {SECRET: "d1"}).manifest
    assert unchanged.units["app.service"].stamp == base.units["app.service"].stamp
    changed = generation_of("m", config("bye"), {SECRET: "d1"}).manifest
    assert changed.units["app.service"].stamp != base.units["app.service"].stamp
    rotated = generation_of("m", config(), {SECRET: "d2"})
    assert rotated.manifest.units["app.service"].stamp != base.units["app.service"].stamp
    assert rotated.id != generation_of("m", config(), {SECRET: "d1"}).id


def test_secret_values_never_enter_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path))
    gen = generation_of("m", config(), {SECRET: "digest-of-ciphertext"})
    path = store(gen)
    assert path == tmp_path / "builds" / "m" / gen.id
    stored = json.loads((path / "manifest.json").read_text())
    assert stored["secrets"][SECRET] == {
        "path": SECRET, "generator": "pw", "file": "hash", "shared": False, "owner": "root", "group": "root",
        "mode": "0400", "digest": "digest-of-ciphertext",
    }
    assert (path / "activate.sh").read_text() == gen.script
    assert sorted(p.name for p in (path / "objects").iterdir()) == sorted(gen.objects)
    assert store(gen) == path  # already built: nothing written again


def test_missing_secret_and_bad_definitions_are_reported_together() -> None:
    c = config()
    for path in ("etc/relative", "/etc/../etc/x", "/var/lib/pyclan/x"):
        c.files[path] = FileSpec(path=path, content="x")  # the builder refuses some of these already
    c.unit("bad name", "x")
    c.package("Bad_Package")
    c.hook("a", "echo", after=["b"])
    c.hook("b", "echo", after=["a"])
    c.unit("other.service", UNIT, restart_on=["/etc/app/conff"])
    with pytest.raises(ClanError) as exc:
        generation_of("m", c, {})
    messages = "\n".join(p.render() for p in exc.value.problems)
    assert "secret pw/hash has not been generated yet" in messages and "pyclan vars generate m" in messages
    assert "'etc/relative' must be an absolute path" in messages
    assert "must be normalised (write '/etc/x')" in messages
    assert "is below /var/lib/pyclan" in messages
    assert "invalid systemd unit name 'bad name'" in messages
    assert "invalid Debian package name 'Bad_Package'" in messages
    assert "hooks depend on each other in a cycle: a -> b -> a" in messages
    assert "did you mean '/etc/app/conf'" in messages


def test_check_path() -> None:
    assert check_path("/etc/x") is None
    assert check_path("/") is not None
    assert check_path("/proc/x") is not None
    assert check_path("/etc//x") is not None
    assert check_path("/etc/a\nb") is not None


def test_activation_script_is_valid_posix_sh_and_quotes_everything() -> None:
    c = MachineConfig().file("/etc/it's here", "x", owner="root").hook("x; rm -rf /", "echo")
    with pytest.raises(ClanError, match="invalid hook name"):
        generation_of("m", c, {})
    c.hooks.clear()
    c.user("bob", description="Bob's $(whoami) account", shell="/bin/sh")
    script = generation_of("m", c, {}).script
    assert "'Bob'\"'\"'s $(whoami) account'" in script
    assert "put 'etc/it'\"'\"'s here'" in script
    for shell in ("dash", "bash"):
        proc = subprocess.run([shell, "-n"], input=script, text=True, capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr


def test_generation_zero_is_empty_and_lists_match_the_manifest() -> None:
    zero = empty_generation("m")
    assert zero.manifest.managed_paths() == [] and zero.manifest.activator == activation.ACTIVATOR
    files = generation_of("m", config(), {SECRET: "d"}).folder_files()
    assert files["packages.list"] == b"hello\n"
    assert files["users.list"] == b"alice\n"
    assert files["paths.list"].decode().splitlines() == sorted(files["paths.list"].decode().splitlines())
    unit_line = files["units.list"].decode().split()
    assert unit_line[0] == "app.service" and unit_line[2:] == ["1", "1"]


def test_a_drop_in_changes_the_systemd_stamp_but_other_files_do_not() -> None:
    base = generation_of("m", config(), {SECRET: "d"}).folder_files()["systemd.stamp"]
    other = config().file("/etc/other", "x")
    assert generation_of("m", other, {SECRET: "d"}).folder_files()["systemd.stamp"] == base
    drop_in = config().file("/etc/systemd/system/ssh.service.d/x.conf", "[Service]\nNice=5\n")
    assert generation_of("m", drop_in, {SECRET: "d"}).folder_files()["systemd.stamp"] != base
