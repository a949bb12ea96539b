"""build_manifest is one function per kind of thing; each can be exercised on its own."""

from __future__ import annotations

from pyclan.build import manifest as mf
from pyclan.config.machine_config import MachineConfig

UNIT = "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"


def test_users_get_their_groups_and_authorized_keys_files_from_the_users_function_alone() -> None:
    c = MachineConfig().user("alice", groups=["a"], authorized_keys=["ssh-ed25519 AAAA k"])
    c.group("b", members=["alice"])
    b = mf._Build("m", c)
    users = mf._users(b)
    assert users["alice"].groups == ("a", "b")
    assert list(b.files) == ["/home/alice/.ssh/authorized_keys"] and not b.problems


def test_unit_files_bring_their_enablement_links_and_units_their_stamps() -> None:
    c = MachineConfig().file("/etc/app.conf", "x").unit("app.service", UNIT, restart_on=["/etc/app.conf"])
    b = mf._Build("m", c)
    mf._files(b)
    keys = mf._unit_files(b)
    assert set(b.links) == {"/etc/systemd/system/multi-user.target.wants/app.service"}
    units = mf._units(b, keys, {})
    changed = MachineConfig().file("/etc/app.conf", "y").unit("app.service", UNIT, restart_on=["/etc/app.conf"])
    b2 = mf._Build("m", changed)
    mf._files(b2)
    assert mf._units(b2, mf._unit_files(b2), {})["app.service"].stamp != units["app.service"].stamp


def test_each_kind_reports_its_own_problems_into_one_list() -> None:
    c = MachineConfig().package("Bad_Name").group("Bad Group")
    b = mf._Build("m", c)
    mf._groups(b)
    mf._packages(b)
    assert [p.path for p in b.problems.items] == ["machines.m.groups.Bad Group", "machines.m.packages"]


def _steps(c: MachineConfig, digests: dict[str, str] | None = None) -> dict[str, str]:
    return mf.build_manifest("m", c, digests or {}, activator="a")[0].steps


def test_each_step_digest_changes_exactly_with_the_inputs_of_its_step() -> None:
    from pyclan.config.machine_config import SecretFileSpec

    secret = "/var/lib/pyclan/secrets/pw/hash"

    def config(file: str = "1", unit: str = "/bin/true", package: str = "hello", watched: str = "w") -> MachineConfig:
        c = MachineConfig().file("/etc/one", file).file("/etc/watched", watched).package(package)
        c.user("alice", hashed_password_file=secret).reload_unit("ssh.service", on=["/etc/watched"])
        c.unit("app.service", UNIT.replace("/bin/true", unit)).hook("h", "true")
        c.secrets[secret] = SecretFileSpec(path=secret, generator="pw", file="hash")
        return c

    base = _steps(config(), {secret: "d1"})
    assert set(base) == {"packages", "users", "units", "reloads", "hooks"}

    def changed(c: MachineConfig, digest: str = "d1") -> set[str]:
        other = _steps(c, {secret: digest})
        return {s for s in base if other[s] != base[s]}

    assert changed(config(file="2")) == {"hooks"}
    assert changed(config(watched="x")) == {"reloads", "hooks"}
    assert changed(config(unit="/bin/false")) == {"units"}
    assert changed(config(package="cowsay")) == {"packages", "hooks"}
    assert changed(config(), digest="d2") == {"users", "hooks"}  # the password's secret was regenerated
    assert mf.build_manifest("m", config(), {secret: "d1"}, activator="b")[0].steps.keys() == base.keys()
    assert all(v != base[k] for k, v in mf.build_manifest("m", config(), {secret: "d1"}, activator="b")[0]
               .steps.items())  # a new activation library re-runs every step once
