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
