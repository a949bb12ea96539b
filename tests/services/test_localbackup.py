"""localbackup: the rendered provider commands, run with real rsnapshot and rsync on declared state.

The commands run in a private mount namespace (`isolated`) with the machine's files in place: the
state declarations of two services (users' homes and a data service with backup hooks) under
/etc/pyclan/state, the provider under /etc/pyclan/backups/localbackup.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from pyclan.clan import Clan
from pyclan.config.machine_config import MachineConfig, Origin
from pyclan.config.merge import merge_fragments
from pyclan.errors import ClanError

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

DATA_SERVICE = '''
from pyclan.services import InstanceContext, MachineConfig, Service

service = Service("appdata", description="a service with state and backup hooks")


@service.role("default")
def default(ctx: InstanceContext) -> MachineConfig:
    return MachineConfig().state(
        "appdata", ["/var/lib/appdata"],
        pre_backup="echo dump > /var/lib/appdata/dump.sql",
        post_backup="rm -f /var/lib/appdata/dump.sql",
        post_restore="echo restored > /run/appdata-restored",
        stop_on_restore=["appdata.service"],
    )
'''

CLAN = """
[meta]
name = "lb"
[machines.laptop]
[instances.alice]
module.name = "users"
roles.default.machines.laptop.settings.prompt = false
[instances.appdata]
module = { name = "appdata", input = "self" }
roles.default.machines.laptop = {}
[instances.localbackup]
roles.default.machines.laptop.settings.snapshots = 2
roles.default.machines.laptop.settings.targets.usb.directory = "/srv/backup"
roles.default.machines.laptop.settings.targets.usb.preBackupHook = "echo pre-hook ran"
"""

BAD_TARGET = """
meta.name = "bad"
[machines.laptop]
[instances.localbackup]
roles.default.machines.laptop.settings.targets.usb.directory = "backup"
"""
PROVIDER = "/etc/pyclan/backups/localbackup"


@pytest.fixture
def clan(make_clan: MakeClan) -> Clan:
    made = make_clan(CLAN)
    (made.dir / "services").mkdir(exist_ok=True)
    (made.dir / "services" / "appdata.py").write_text(DATA_SERVICE)
    return made


def test_state_of_services_merges_into_the_machine_config(clan: Clan) -> None:
    cfg = clan.evaluator.config("laptop")
    assert sorted(cfg.states) == ["appdata", "home-alice"]
    assert cfg.states["home-alice"].folders == ("/home/alice",)
    app = cfg.states["appdata"]
    assert app.command("pre-backup") == "/etc/pyclan/state/appdata/pre-backup"
    assert app.command("pre-restore") is None and app.stop_on_restore == ("appdata.service",)
    assert cfg.files["/etc/pyclan/state/appdata/folders"].content == "/var/lib/appdata\n"
    assert cfg.files["/etc/pyclan/state/appdata/post-restore"].mode == "0755"
    assert {"rsnapshot", "rsync"} <= set(cfg.packages)
    assert {f"{PROVIDER}/{verb}" for verb in ("create", "list", "restore")} <= set(cfg.files)


def test_state_declared_differently_twice_is_a_conflict() -> None:
    a = MachineConfig().state("db", ["/var/lib/db"])
    b = MachineConfig().state("db", ["/srv/db"])
    _, problems = merge_fragments("m", [(Origin("one"), a), (Origin("two"), b)])
    assert any(p.path == "machines.m.states.db" for p in problems)
    same, problems = merge_fragments("m", [(Origin("one"), a), (Origin("two"), a.model_copy(deep=True))])
    assert not problems and list(same.states) == ["db"]


def test_state_folders_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute path"):
        MachineConfig().state("db", ["var/lib/db"])


def test_targets_are_required_and_directories_absolute(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        make_clan(BAD_TARGET).resolved  # noqa: B018
    problem = err.value.problems[0]
    assert problem.path.startswith("instances.localbackup.roles.default.machines.laptop.settings.targets")
    assert "must be an absolute path" in problem.message


def test_create_list_restore_with_real_rsnapshot(clan: Clan, isolated: Isolated) -> None:
    assert shutil.which("rsnapshot") is not None, "rsnapshot is needed: apt-get install rsnapshot"
    cfg = clan.evaluator.config("laptop")
    files = {path: spec.content.encode() for path, spec in cfg.files.items() if path.startswith("/etc/pyclan/")}
    script = f"""
set -e
chmod 0755 /etc/pyclan/state/*/*-* {PROVIDER}/*
mkdir -p /var/lib/appdata /home/alice/docs
printf 'v1\\n' > /var/lib/appdata/db && printf 'alice v1\\n' > /home/alice/docs/a.txt
{PROVIDER}/create
echo ---
printf 'version 2\\n' > /var/lib/appdata/db
{PROVIDER}/create
echo ---
{PROVIDER}/list
echo ---
rm -rf /var/lib/appdata /home/alice/docs
NAME=usb::/srv/backup/snapshot.1 FOLDERS=/var/lib/appdata {PROVIDER}/restore
cat /var/lib/appdata/db; ls /var/lib/appdata; ls /home/alice
echo ---
NAME=usb::/srv/backup/snapshot.0 FOLDERS=/home/alice:/var/lib/appdata {PROVIDER}/restore
cat /var/lib/appdata/db /home/alice/docs/a.txt
echo ---
NAME=usb::/srv/backup/snapshot.0/../../etc FOLDERS=/etc {PROVIDER}/restore 2>&1 || echo refused
NAME=other::/srv/backup/snapshot.0 FOLDERS=/etc {PROVIDER}/restore 2>&1 || echo refused
"""
    done = isolated(script, files=files)
    first, _, listed, one, both, bad = done.stdout.split("---\n")
    assert "pre-hook ran" in first and "running pre-backup command of appdata" in first
    assert listed.split() == ["usb::/srv/backup/snapshot.0", "usb::/srv/backup/snapshot.1"]
    # the pre-backup dump is in the backup; alice's home is not restored
    assert one.splitlines() == ["localbackup: restoring /var/lib/appdata", "v1", "db", "dump.sql"]
    assert both.splitlines()[2:] == ["version 2", "alice v1"]
    assert bad.splitlines() == [
        "localbackup: usb::/srv/backup/snapshot.0/../../etc is not a snapshot of target usb".replace("usb::", ""),
        "refused",
        "localbackup: no target named other",
        "refused",
    ]


MOUNTED = """
[meta]
name = "lbm"
[machines.laptop]
[instances.appdata]
module = { name = "appdata", input = "self" }
roles.default.machines.laptop = {}
[instances.localbackup]
roles.default.machines.laptop.settings.targets.disk.directory = "/srv/mnt/disk/backups"
roles.default.machines.laptop.settings.targets.disk.mountpoint = "/srv/mnt/disk"
roles.default.machines.laptop.settings.targets.disk.preMountHook = "echo pre-mount"
roles.default.machines.laptop.settings.targets.disk.postMountHook = "echo post-mount"
roles.default.machines.laptop.settings.targets.disk.preUnmountHook = "echo pre-unmount"
roles.default.machines.laptop.settings.targets.disk.postUnmountHook = "echo post-unmount"
"""


def test_a_target_with_a_mountpoint_is_mounted_around_each_command(make_clan: MakeClan, isolated: Isolated) -> None:
    made = make_clan(MOUNTED)
    (made.dir / "services").mkdir(exist_ok=True)
    (made.dir / "services" / "appdata.py").write_text(DATA_SERVICE)
    cfg = made.evaluator.config("laptop")
    files = {path: spec.content.encode() for path, spec in cfg.files.items() if path.startswith("/etc/pyclan/")}
    script = f"""set -e
chmod 0755 /etc/pyclan/state/*/*-* {PROVIDER}/*
mkdir -p /srv/drive /var/lib/appdata && echo data > /var/lib/appdata/db
echo '/srv/drive /srv/mnt/disk none bind 0 0' >> /etc/fstab
{PROVIDER}/create
mountpoint -q /srv/mnt/disk || echo unmounted
echo ---
{PROVIDER}/list
find /srv/drive/backups -path '*appdata/db'
"""
    done = isolated(script, files=files)
    created, listed = done.stdout.split("---\n")
    lines = created.splitlines()
    assert lines[:2] == ["pre-mount", "post-mount"] and lines[-3:] == ["pre-unmount", "post-unmount", "unmounted"]
    assert listed.splitlines() == [
        "pre-mount", "post-mount", "disk::/srv/mnt/disk/backups/snapshot.0", "pre-unmount", "post-unmount",
        "/srv/drive/backups/snapshot.0/laptop/var/lib/appdata/db",  # on the drive, not under the mountpoint
    ]  # fmt: skip
