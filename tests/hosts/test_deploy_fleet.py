"""Many hosts at once: parallel updates, one unreachable host among five, and a canary + batch rollout
that stops at the first failure and names who was not attempted (issue 11, "Rollouts for fleets")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_support import (
    DeployClan,
    LocalHosts,
    SshRun,
    make_deploy_clan,
    read_files,
    started_hosts_fixture,  # noqa: F401 - provides the `started_hosts` fixture
)

from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

NAMES = [f"dp-f{i}" for i in range(1, 6)]


def test_one_stopped_host_among_five_is_named_and_the_others_are_updated(
    started_hosts: LocalHosts, ssh_run: SshRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    clan: DeployClan = make_deploy_clan(tmp_path / "clan")
    infos = {h.name: h for h in started_hosts(NAMES)}
    # targetHost is where a machine is reached when it is not up as a local host
    targets = {name: f"root@{h.address}" for name, h in infos.items()}

    def declare(version: int) -> None:
        clan.set({n: {"files": {"/etc/fleet": f"{n} v{version}\n"}} for n in NAMES}, targets)

    declare(1)
    proc = clan.cli("machines", "update", "--all", "--json")
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    assert [(r["machine"], r["changed"], r["generation"], r["error"]) for r in first] == [
        (n, True, 1, None) for n in NAMES
    ]
    assert {r["target"] for r in first} == {targets[n] for n in NAMES}

    stopped = "dp-f3"
    hosts.down([stopped])
    declare(2)
    proc = clan.cli("machines", "update", "--all", "--json", "--jobs", "5", "--connect-timeout", "2")
    assert proc.returncode == 1
    second = {r["machine"]: r for r in json.loads(proc.stdout)}
    assert set(second) == set(NAMES)
    failed = second.pop(stopped)
    assert not failed["changed"] and failed["generation"] is None
    assert f"cannot connect to {targets[stopped]}" in failed["error"], failed
    assert failed["target"] == targets[stopped]
    for name, report in second.items():
        assert report["changed"] and report["generation"] == 2 and report["error"] is None, report
        assert read_files(ssh_run, infos[name], ["/etc/fleet"]) == {"/etc/fleet": f"{name} v2\n"}

    # the human-readable summary names the stopped host too
    text = clan.cli("machines", "update", "--all", "--connect-timeout", "2")
    assert text.returncode == 1
    assert stopped in text.stdout and "cannot connect" in text.stdout and "unchanged" in text.stdout

    # a rollout: canary dp-f1, then batches of 2; the stopped dp-f3 fails in the first batch, so with
    # --max-failures 1 the next batch (dp-f4, dp-f5) is not started and keeps v2
    declare(3)
    proc = clan.cli("machines", "update", "--all", "--json", "--canary", "1", "--batch-size", "2",
                    "--max-failures", "1", "--connect-timeout", "2")
    assert proc.returncode == 1
    rollout = {r["machine"]: r for r in json.loads(proc.stdout)}
    for name in ("dp-f1", "dp-f2"):
        assert rollout[name]["generation"] == 3 and rollout[name]["error"] is None, rollout[name]
        assert read_files(ssh_run, infos[name], ["/etc/fleet"]) == {"/etc/fleet": f"{name} v3\n"}
    assert rollout[stopped]["attempted"] and "cannot connect" in rollout[stopped]["error"], rollout[stopped]
    for name in ("dp-f4", "dp-f5"):
        assert rollout[name]["attempted"] is False, rollout[name]
        assert rollout[name]["error"].startswith("not attempted: 1 host(s) failed"), rollout[name]
        assert read_files(ssh_run, infos[name], ["/etc/fleet"]) == {"/etc/fleet": f"{name} v2\n"}
