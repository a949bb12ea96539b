"""`pyclan backups` end to end on real hosts, for both providers (borgbackup to a second host, localbackup).

The client has the state of two services: the `users` service's home of alice, and a service of the
clan's own (`appdata`) whose state names its unit to stop on restore and records, in its post-restore
command, whether the unit was stopped. Per provider: data is written, a backup created and listed,
both states destroyed; restoring only `appdata` brings its data back byte for byte and leaves alice's
home as it was after the damage; restoring everything brings alice's back too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DeployClan, LocalHosts, SshRun, started_hosts_fixture  # noqa: F401

from pyclan.hosts.control import HostInfo
from pyclan.vars.keys import keygen

pytestmark = pytest.mark.hosts

CLIENT, SERVER = "bk-client", "bk-server"

APPDATA = '''
"""A service with a data directory, a running unit, and restore hooks."""

from pyclan.services import InstanceContext, MachineConfig, Service

service = Service("appdata", description="test service with state")

UNIT = """[Unit]
Description=appdata
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""


@service.role("default")
def default(ctx: InstanceContext) -> MachineConfig:
    return (
        MachineConfig()
        .unit("appdata.service", UNIT)
        .state(
            "appdata", ["/var/lib/appdata"],
            pre_restore="systemctl is-active appdata.service > /run/appdata-during-restore || true",
            post_restore="echo done >> /run/appdata-restores",
            stop_on_restore=["appdata.service"],
        )
    )
'''

# the data of both states, written with random bytes; `digest` prints what a restore must bring back
WRITE = """set -eu
mkdir -p /var/lib/appdata/sub /home/alice/docs
head -c 300000 /dev/urandom > /var/lib/appdata/db.bin
head -c 777 /dev/urandom > /var/lib/appdata/sub/index
printf 'notes of alice\\n' > /home/alice/docs/notes.txt
head -c 5000 /dev/urandom > /home/alice/photo.raw
"""
DIGEST = "cd {0} && find . -type f | sort | xargs -r sha256sum"
DAMAGE = """set -eu
rm -rf /var/lib/appdata/* /home/alice/docs
echo overwritten > /home/alice/photo.raw
echo junk > /var/lib/appdata/junk
"""


INVENTORY = """
[meta]
name = "backups"
[machines.bk-client]
[machines.bk-server]
[instances.internet]
roles.default.machines.bk-client.settings.host = "{client}"
roles.default.machines.bk-server.settings.host = "{server}"
[instances.alice]
module.name = "users"
roles.default.machines.bk-client.settings.prompt = false
[instances.appdata]
module = {{ name = "appdata", input = "self" }}
roles.default.machines.bk-client = {{}}
[instances.borgbackup]
roles.server.machines.bk-server = {{}}
roles.client.machines.bk-client = {{}}
[instances.localbackup]
roles.default.machines.bk-client.settings.targets.disk.directory = "/var/backup"
"""


@pytest.fixture
def clan_root(tmp_path: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
        mp.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
        root = tmp_path / "clan"
        (root / "services").mkdir(parents=True)
        (root / "services" / "appdata.py").write_text(APPDATA)
        keygen(root, "tester")
        yield root


def _json(clan: DeployClan, *args: str) -> Any:
    proc = clan.cli(*args, "--json", timeout=600)
    assert proc.returncode == 0, f"pyclan {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def test_backup_destroy_restore_one_service_then_all_with_both_providers(
    clan_root: Path, started_hosts: LocalHosts, ssh_run: SshRun
) -> None:
    infos = {h.name: h for h in started_hosts([CLIENT, SERVER])}
    (clan_root / "clan.toml").write_text(INVENTORY.format(client=infos[CLIENT].address, server=infos[SERVER].address))
    clan = DeployClan(clan_root)
    clan.cli("vars", "generate", check=True, timeout=300)
    clan.cli("machines", "update", SERVER, CLIENT, check=True, timeout=900)
    for provider in ("borgbackup", "localbackup"):
        _round_trip(clan, provider, infos[CLIENT], ssh_run)
    listed = _json(clan, "backups", "list", CLIENT)
    assert {b["provider"] for b in listed["backups"]} == {"borgbackup", "localbackup"}


def _round_trip(clan: DeployClan, provider: str, client: HostInfo, ssh_run: SshRun) -> None:
    ssh_run(client, WRITE)
    app_before = ssh_run(client, DIGEST.format("/var/lib/appdata")).stdout
    alice_before = ssh_run(client, DIGEST.format("/home/alice")).stdout
    assert len(app_before.splitlines()) == 2 and "./docs/notes.txt" in alice_before  # (and the skeleton files)

    created = _json(clan, "backups", "create", CLIENT, "--provider", provider)
    assert created["providers"] == [provider]
    assert set(created["folders"]) == {"/home/alice", "/var/lib/appdata"}
    listed = _json(clan, "backups", "list", CLIENT, "--provider", provider)
    names = [b["name"] for b in listed["backups"] if b["provider"] == provider]
    assert len(names) == 1, listed
    name = names[0]
    assert name.startswith("disk::/var/backup/snapshot.0" if provider == "localbackup" else f"{SERVER}::")

    ssh_run(client, DAMAGE)
    alice_damaged = ssh_run(client, DIGEST.format("/home/alice")).stdout
    assert ssh_run(client, "systemctl is-active appdata.service").stdout.strip() == "active"

    one = _json(clan, "backups", "restore", CLIENT, provider, name, "--service", "appdata")
    assert one["services"] == ["appdata"] and one["restarted_units"] == ["appdata.service"]
    assert ssh_run(client, DIGEST.format("/var/lib/appdata")).stdout == app_before  # junk gone, data back
    assert ssh_run(client, DIGEST.format("/home/alice")).stdout == alice_damaged  # the other state untouched
    assert ssh_run(client, "cat /run/appdata-during-restore").stdout.strip() == "inactive"
    assert ssh_run(client, "systemctl is-active appdata.service").stdout.strip() == "active"

    every = _json(clan, "backups", "restore", CLIENT, provider, name)
    assert every["services"] == ["appdata", "home-alice"]
    assert ssh_run(client, DIGEST.format("/home/alice")).stdout == alice_before
    assert ssh_run(client, DIGEST.format("/var/lib/appdata")).stdout == app_before
    assert ssh_run(client, "cat /run/appdata-restores && rm /run/appdata-restores").stdout.split() == ["done", "done"]

    # a failed restore still starts the stopped unit again, and says what failed
    missing = "disk::/var/backup/snapshot.9" if provider == "localbackup" else f"{SERVER}::no-such-archive"
    failed = clan.cli("backups", "restore", CLIENT, provider, missing, "--service", "appdata")
    assert failed.returncode == 1 and "restoring state 'appdata'" in failed.stderr, failed.stderr
    assert ssh_run(client, "systemctl is-active appdata.service").stdout.strip() == "active"
    assert ssh_run(client, DIGEST.format("/var/lib/appdata")).stdout == app_before

    wrong = clan.cli("backups", "restore", CLIENT, provider, name, "--service", "appdat")
    assert wrong.returncode == 1 and "no state named 'appdat'" in wrong.stderr and "appdata" in wrong.stderr
