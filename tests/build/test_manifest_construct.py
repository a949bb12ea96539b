"""The build constructs its manifest without pydantic's validation pass (validated at the edges,
constructed inside): the result must equal the validated manifest, byte for byte."""

from __future__ import annotations

from pyclan.build.manifest import Manifest, build_manifest
from pyclan.config.machine_config import MachineConfig, SecretFileSpec

SECRET = "/var/lib/pyclan/secrets/pw/hash"
UNIT = "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"


def _config(text: str) -> MachineConfig:
    c = MachineConfig().file("/etc/app/conf", text).file("/etc/app/key", "k\n", mode="0600", owner="app")
    c.package("hello", "tree").user("app", groups=["team"], authorized_keys=["ssh-ed25519 AAAA app"], home="/srv/app")
    c.group("team", members=["app", "www-data"])
    c.unit("app.service", UNIT, restart_on=["/etc/app/conf", SECRET]).reload_unit("ssh.service", on=["/etc/app/key"])
    c.hook("b", "echo b", after=["a"]).hook("a", "echo a").check("up", unit="app.service", timeout=5)
    c.secrets[SECRET] = SecretFileSpec(path=SECRET, generator="pw", file="hash", mode="0400")
    return c


def test_the_built_manifest_equals_the_validated_one() -> None:
    manifest, objects = build_manifest("m", _config("one\n"), {SECRET: "d1"}, activator="act")
    validated = Manifest.model_validate(manifest.model_dump())
    assert manifest == validated
    assert manifest.to_bytes() == validated.to_bytes() == Manifest.from_bytes(manifest.to_bytes()).to_bytes()
    assert set(objects) == set(manifest.object_ids())


def test_cached_entries_follow_the_content() -> None:
    first, _ = build_manifest("m", _config("one\n"), {SECRET: "d1"})
    other, objects = build_manifest("n", _config("two\n"), {SECRET: "d1"})
    again, _ = build_manifest("m", _config("one\n"), {SECRET: "d1"})
    assert first.files["/etc/app/conf"].sha256 != other.files["/etc/app/conf"].sha256
    assert objects[other.files["/etc/app/conf"].sha256] == b"two\n"
    assert first == again and first.id == again.id
    assert other.machine == "n" and first.units["app.service"].stamp != other.units["app.service"].stamp
