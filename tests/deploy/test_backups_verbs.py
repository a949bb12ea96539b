"""`pyclan backups`: what the evaluated config decides before any host is contacted.

Providers and states come from the machine's configuration; wrong names are clear errors with
did-you-mean hints, in the CLI (`--json` too) and the API envelope. The round trip on real hosts is
`tests/hosts/test_backups.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clans import MakeClan

from pyclan.api import call
from pyclan.clan import Clan, open_clan
from pyclan.deploy import backups
from pyclan.errors import ClanError
from pyclan.vars.generate import generate
from pyclan.vars.keys import KEY_FILE_ENV, keygen

CLAN = """
[meta]
name = "bv"
[machines.laptop]
[machines.plain]
[instances.alice]
module.name = "users"
roles.default.machines.laptop.settings.prompt = false
[instances.localbackup]
roles.default.machines.laptop.settings.targets.usb.directory = "/srv/backup"
[instances.borgbackup]
roles.server.machines.plain = {}
roles.client.machines.laptop = {}
"""


@pytest.fixture
def clan(make_clan: MakeClan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Clan:
    """The clan above with its vars generated (the borg server needs the client's key)."""
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "admin.key"))
    made = make_clan(CLAN)
    keygen(made.dir, "tester")
    generate(made)
    return open_clan(made.dir, {})


def _cli(clan: Clan, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(clan.dir), *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_providers_are_what_the_machine_config_has(clan: Clan) -> None:
    assert backups.providers(clan.evaluator.config("laptop")) == ["borgbackup", "localbackup"]
    assert backups.providers(clan.evaluator.config("plain")) == []  # a borg server backs nothing up


def test_unknown_provider_service_and_machine_are_clear_errors(clan: Clan) -> None:
    with pytest.raises(ClanError) as err:
        backups.create_backups(clan, "laptop", "localbackups")
    assert err.value.problems[0].message == "machine 'laptop' has no backup provider 'localbackups'"
    assert "localbackup" in (err.value.problems[0].hint or "")
    with pytest.raises(ClanError) as err:
        backups.restore_backup(clan, "laptop", "localbackup", "usb::/srv/backup/snapshot.0", "home-alic")
    assert err.value.problems[0].path == "--service" and "home-alice" in (err.value.problems[0].hint or "")
    with pytest.raises(ClanError) as err:
        backups.list_backups(clan, "plain")
    assert "has no backup provider" in err.value.problems[0].message
    with pytest.raises(ClanError) as err:
        backups.list_backups(clan, "lapto")
    assert err.value.problems[0].kind == "unknown-machine" and "laptop" in (err.value.problems[0].hint or "")


def test_cli_and_api_report_errors_without_tracebacks(clan: Clan) -> None:
    proc = _cli(clan, "backups", "restore", "laptop", "localbackup", "x", "--service", "nope", "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["errors"][0]["message"] == "machine 'laptop' has no state named 'nope'"
    answer = call("create_backup", {"machine": "plain", "flake": str(clan.dir)})
    assert answer["status"] == "error" and "has no backup provider" in answer["errors"][0]["message"]
