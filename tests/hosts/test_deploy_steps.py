"""A one-file change re-runs only the activation steps whose inputs changed (issue 11).

Each skippable step (packages, users, units, reloads, hooks) carries a digest of its inputs in
the generation (`steps.list`); the host skips it when that digest is the one it last applied
(`state/steps`). What the host did is read from each generation's `activation.log`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DeployClan, LocalHosts, SshRun, make_deploy_clan

from pyclan.deploy.update import UpdateOptions, update
from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

M = "dp-steps"
R = "/var/lib/pyclan"
ONE, TWO = "/etc/deploytest/one", "/etc/deploytest/two"
SKIPPABLE = ("packages", "users", "units", "reloads", "hooks")
FAST = UpdateOptions(confirm_timeout=0)


@pytest.fixture(scope="module")
def host(local_hosts: LocalHosts) -> Iterator[hosts.HostInfo]:
    [info] = local_hosts([M], fresh=True)
    yield info
    hosts.down([M])


def state(one: str = "1", start: str = "/bin/sleep infinity", **extra: Any) -> dict[str, Any]:
    return {
        "files": {ONE: f"{one}\n", TWO: "two\n"}, "packages": ["hello"], "users": {"stepper": []},
        "units": {"step.service": start}, "reloads": {"ssh.service": [TWO]},
        "hooks": {"count": "echo run >> /root/hook-runs"}, **extra,
    }


def steps(ssh_run: SshRun, host: hosts.HostInfo, generation: int, log: str = "activation.log") -> dict[str, str]:
    """Skippable step → `ran` or `skipped`, from that generation's log on the host."""
    out: dict[str, str] = {}
    for line in ssh_run(host, f"cat {R}/generations/{generation}/{log}").stdout.splitlines():
        word = line.split(" ")
        if len(word) == 2 and word[0] == "@@pyclan-step" and word[1].startswith("hook:"):
            word[1] = "hooks"  # each hook is a step of its own
        if len(word) == 2 and word[1] in SKIPPABLE and word[0] in ("@@pyclan-step", "@@pyclan-skipped"):
            out[word[1]] = "ran" if word[0] == "@@pyclan-step" else "skipped"
    return out


def deploy(clan: DeployClan, settings: dict[str, Any]) -> int:
    [r] = update(clan.set({M: settings}), [M], FAST)
    assert r.error is None and r.generation is not None, (r, r.output)
    return r.generation


def test_one_file_change_runs_only_the_steps_whose_inputs_changed(
    host: hosts.HostInfo, ssh_run: SshRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    clan = make_deploy_clan(tmp_path / "clan")
    first = deploy(clan, state())
    assert steps(ssh_run, host, first) == dict.fromkeys(SKIPPABLE, "ran")

    # one file that no unit watches: packages, users, units and reloads are skipped; hooks read
    # files, so they run
    changed = deploy(clan, state(one="2"))
    assert steps(ssh_run, host, changed) == {**dict.fromkeys(SKIPPABLE, "skipped"), "hooks": "ran"}
    assert ssh_run(host, f"cat {ONE}; wc -l < /root/hook-runs").stdout.split() == ["2", "2"]
    assert ssh_run(host, "systemctl is-active step.service; id -u stepper").returncode == 0

    # the watched file: only the reload (and the hooks)
    watched = deploy(clan, {**state(one="2"), "files": {ONE: "2\n", TWO: "three\n"}})
    assert steps(ssh_run, host, watched) == {**dict.fromkeys(SKIPPABLE, "skipped"), "reloads": "ran", "hooks": "ran"}

    # a unit: only the units step (hooks do not read units)
    unit = deploy(clan, {**state(one="2", start="/bin/sleep 100000"), "files": {ONE: "2\n", TWO: "three\n"}})
    assert steps(ssh_run, host, unit) == {**dict.fromkeys(SKIPPABLE, "skipped"), "units": "ran"}
    assert "sleep 100000" in ssh_run(host, "systemctl show -p ExecStart --value step.service").stdout


def test_a_failed_activation_makes_the_next_one_run_the_steps_it_started(
    host: hosts.HostInfo, ssh_run: SshRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step's record is dropped before it runs: the switch back (and a retry) run it again,
    so the host converges although the digests of the generation switched back to did not change."""
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    clan = make_deploy_clan(tmp_path / "clan")
    good = deploy(clan, state(one="good"))
    broken = {**state(one="good"), "unit_files": {"broken.service": "[Service]\nType=oneshot\nExecStart=/bin/false\n"}}
    [r] = update(clan.set({M: broken}), [M], FAST)
    assert r.error is not None and r.step == "units" and r.generation == good, r
    back = steps(ssh_run, host, good, "rollback.log")
    assert back["units"] == "ran" and back["packages"] == "skipped", back  # the failed run started only units
    assert ssh_run(host, "systemctl list-units --failed --plain --no-legend").stdout.strip() == ""
    assert ssh_run(host, "systemctl is-active step.service").returncode == 0

    # a stopped unit is drift: the next update (here: of one file) runs every step and restarts it
    ssh_run(host, "systemctl stop step.service")
    [r] = update(clan.set({M: state(one="again")}), [M], FAST)
    assert r.error is None and "unit stopped: step.service" in r.extra["repaired"], (r, r.output)
    assert r.generation is not None and steps(ssh_run, host, r.generation) == dict.fromkeys(SKIPPABLE, "ran")
    assert ssh_run(host, "systemctl is-active step.service").returncode == 0
