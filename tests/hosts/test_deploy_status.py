"""`machines status`: deployed vs evaluated generation, and drift made by hand — read-only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import LocalHosts, SshRun, make_deploy_clan, read_files

from pyclan.deploy.update import rollback, update
from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

M, FRESH = "dp-status", "dp-fresh"
EDITED, GONE, SWAPPED, MODE = (f"/etc/deploytest/{n}" for n in ("edited", "gone", "swapped", "mode"))
WANTS = "/etc/systemd/system/multi-user.target.wants/app.service"


@pytest.fixture(scope="module")
def two_hosts(local_hosts: LocalHosts) -> Iterator[dict[str, hosts.HostInfo]]:
    infos = {h.name: h for h in local_hosts([M, FRESH], fresh=True)}
    yield infos
    hosts.down([M, FRESH])


def test_status_reports_state_and_every_kind_of_drift_and_changes_nothing(
    two_hosts: dict[str, hosts.HostInfo], ssh_run: SshRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    clan = make_deploy_clan(tmp_path / "clan")
    host = two_hosts[M]
    state = {"files": {p: f"{p}\n" for p in (EDITED, GONE, SWAPPED, MODE)}, "packages": ["hello"],
             "units": {"app.service": "/bin/sleep infinity"}}
    machines = {M: state, FRESH: {"files": {EDITED: "x\n"}}, "dp-nowhere": {}}
    targets = {"dp-nowhere": "root@127.0.0.1:1"}
    [r] = update(clan.set(machines, targets), [M])
    assert r.error is None, r

    def status() -> dict[str, dict[str, object]]:
        proc = clan.cli("machines", "status", "--json", "--connect-timeout", "2")
        assert proc.returncode == 1, proc.stderr  # dp-nowhere cannot be asked
        return {s["machine"]: s for s in json.loads(proc.stdout)}

    first = status()
    assert (first[M]["state"], first[M]["generation"], first[M]["drift"]) == ("up to date", 1, [])
    assert first[FRESH]["state"] == "never deployed" and first["dp-nowhere"]["error"]

    ssh_run(host, f"""
        echo 'by hand' >> {EDITED}
        rm {GONE}
        rm {SWAPPED}; echo other > {SWAPPED}
        chmod 600 {MODE}
        systemctl disable app.service 2>/dev/null
        systemctl stop app.service
        dpkg -r hello >/dev/null
    """)
    before = read_files(ssh_run, host, [EDITED, SWAPPED])
    drift = {(d["kind"], d["what"]) for d in status()[M]["drift"]}  # type: ignore[union-attr]
    assert drift == {
        ("modified", EDITED), ("removed", GONE), ("replaced", SWAPPED), ("mode", f"{MODE} (now 600 root:root)"),
        ("removed", WANTS), ("stopped-unit", "app.service"), ("missing-package", "hello"),
        ("removed", "/etc/systemd/system/app.service"),  # `systemctl disable` deletes a symlinked unit file too
    }
    assert read_files(ssh_run, host, [EDITED, SWAPPED]) == before  # nothing was repaired or touched

    # a plain `update` puts it all back; `--dry-run` first shows what it would repair, per file with a diff
    proc = clan.cli("machines", "update", M, "--dry-run", "--json")
    [would] = json.loads(proc.stdout)
    assert would["changed"] and f"changed by hand: {EDITED}" in would["drift"], would
    diffs = {f["path"]: f for f in would["changes"]["files"]}
    assert diffs[EDITED]["kind"] == "repair" and "-by hand" in diffs[EDITED]["diff"].splitlines(), diffs
    assert "-other" in diffs[SWAPPED]["diff"].splitlines() and f"+{SWAPPED}" in diffs[SWAPPED]["diff"].splitlines()
    text = clan.cli("machines", "update", M, "--dry-run").stdout
    assert f"repair {EDITED}" in text and "    -by hand" in text, text
    assert read_files(ssh_run, host, [EDITED, SWAPPED]) == before
    [fixed] = update(clan.open(), [M])
    assert fixed.error is None and fixed.generation == 1 and fixed.changed, (fixed, fixed.output)
    assert {"unit stopped: app.service", f"removed: {WANTS}", f"mode or owner changed: {MODE} (now 600 root:root)",
            f"changed by hand: {EDITED}", "package removed: hello"} <= set(fixed.extra["repaired"]), fixed.extra
    assert status()[M]["drift"] == []
    assert read_files(ssh_run, host, [EDITED, GONE, SWAPPED]) == {p: f"{p}\n" for p in (EDITED, GONE, SWAPPED)}
    assert ssh_run(host, "systemctl is-enabled app.service; systemctl is-active app.service").returncode == 0
    [again] = update(clan.open(), [M])
    assert again.error is None and not again.changed  # nothing left to repair: one round trip
    proc = clan.cli("machines", "update", M, "--repair", "--json")  # still accepted: it is the default
    assert proc.returncode == 0 and not json.loads(proc.stdout)[0]["changed"], proc.stderr

    # generations are immutable: a hand edit goes into generation 1's own tree, yet a rollback
    # to generation 1 after an update restores what generation 1 declared
    ssh_run(host, f"echo 'by hand' >> {EDITED}; chmod 600 {MODE}")
    clan.set({**machines, M: {**state, "files": {EDITED: "new\n"}}}, targets)
    assert status()[M]["state"] == "outdated"
    text = clan.cli("machines", "status", M).stdout
    assert "outdated" in text and f"{M}: changed by hand: {EDITED}" in text
    [r] = update(clan.open(), [M])
    assert r.error is None and r.generation == 2, (r, r.output)
    back = rollback(clan.open(), M)
    assert back.error is None and back.generation == 1, (back, back.output)
    assert read_files(ssh_run, host, [EDITED]) == {EDITED: f"{EDITED}\n"}
    assert ssh_run(host, f"stat -L -c %a {MODE}").stdout.strip() == "644"
