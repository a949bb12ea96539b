"""Rollouts that cannot lose a host: health checks, magic rollback, converging rollback, timeouts.

One host serves the whole module (each test first updates it to a known generation). A change
that cuts the controller off — sshd on another port, a firewall rule, a broken network config —
must undo itself on the host, and so must an activation whose controller was killed before it
could confirm.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from deploy_support import DeployClan, LocalHosts, SshRun, make_deploy_clan, read_files

from pyclan.deploy.update import UpdateOptions, generations, rollback, update
from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

M = "dp-safe"
MARK = "/etc/deploytest/mark"
R = "/var/lib/pyclan"
#: short deadlines keep the module quick: the host waits 6 s for the confirmation
FAST = UpdateOptions(confirm_timeout=6, connect_timeout=2, timeout=20, activation_timeout=60)
FAST_CLI = ("--confirm-timeout", "6", "--connect-timeout", "2", "--timeout", "20", "--activation-timeout", "60")


@pytest.fixture(scope="module")
def clan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployClan]:
    tmp = tmp_path_factory.mktemp("safety")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYCLAN_CACHE_DIR", str(tmp / "cache"))
        mp.setenv("PYCLAN_AGE_KEY_FILE", str(tmp / "age.key"))
        yield make_deploy_clan(tmp / "clan")


@pytest.fixture(scope="module")
def host(local_hosts: LocalHosts) -> Iterator[hosts.HostInfo]:
    (info,) = local_hosts([M], fresh=True)
    yield info
    hosts.down([M])


def base(mark: str, **extra: Any) -> dict[str, Any]:
    """A generation that keeps SSH working, told apart by the content of MARK."""
    return {"files": {MARK: f"{mark}\n"}, "checks": {"ssh": {"tcp": 22, "timeout": 5}}, **extra}


def current(ssh_run: SshRun, host: hosts.HostInfo) -> str:
    return ssh_run(host, f"readlink {R}/current").stdout.strip().rsplit("/", 1)[-1]


def wait_for_generation(ssh_run: SshRun, host: hosts.HostInfo, number: int, within: float = 60) -> None:
    """Until the host is on generation `number` (it switches back on its own, after a deadline)."""
    end = time.monotonic() + within
    while True:
        proc = ssh_run(host, f"readlink {R}/current; test -e {R}/pending && echo pending || true", check=False)
        if proc.returncode == 0 and proc.stdout.split() == [f"generations/{number}"]:
            return
        assert time.monotonic() < end, f"{M} did not switch to generation {number}: {proc.stdout}{proc.stderr}"
        time.sleep(0.5)


def no_failed_units(ssh_run: SshRun, host: hosts.HostInfo) -> None:
    failed = ssh_run(host, "systemctl list-units --failed --plain --no-legend").stdout.strip()
    assert failed == "", failed


def start(clan: DeployClan, ssh_run: SshRun, host: hosts.HostInfo, mark: str) -> int:
    [r] = update(clan.set({M: base(mark)}), [M], FAST)
    assert r.error is None, (r, r.output)
    assert read_files(ssh_run, host, [MARK]) == {MARK: f"{mark}\n"}
    assert r.generation is not None
    return r.generation


def test_failing_health_check_switches_back_and_reports_the_check(
    clan: DeployClan, host: hosts.HostInfo, ssh_run: SshRun
) -> None:
    good = start(clan, ssh_run, host, "checks-good")
    bad = base("checks-bad", checks={"ssh": {"tcp": 22}, "web": {"tcp": 2999, "timeout": 2},
                                      "zz-never": {"command": "echo never run", "timeout": 1}})
    [r] = update(clan.set({M: bad}), [M], FAST)
    assert r.error is not None and "health check 'web' of generation" in r.error, r
    assert f"switched back to generation {good}" in r.error and r.generation == good and not r.changed
    assert r.step == "check:web" and r.output is not None
    assert "nothing listens on TCP port 2999" in r.output and ":22" in r.output  # what does listen
    assert read_files(ssh_run, host, [MARK]) == {MARK: "checks-good\n"}
    failed_number = good + 1
    listed = {g.number: g for g in generations(clan.open(), M).items}
    assert listed[failed_number].failed == "check:web" and listed[good].current and listed[good].failed is None

    # a retry of the same generation reuses its number; a unit that fails to start leaves no failed unit
    [again] = update(clan.open(), [M], FAST)
    assert again.error is not None and again.step == "check:web"
    assert sorted(listed) == sorted(g.number for g in generations(clan.open(), M).items)
    broken = base("unit-bad", unit_files={"broken.service": "[Service]\nType=oneshot\nExecStart=/bin/false\n"})
    [r] = update(clan.set({M: broken}), [M], FAST)
    assert r.error is not None and r.step == "units" and "broken.service" in (r.output or ""), r
    no_failed_units(ssh_run, host)
    assert current(ssh_run, host) == str(good)

    # --no-rollback keeps the failed generation for debugging (and the CLI exits non-zero)
    clan.set({M: bad})
    proc = clan.cli("machines", "update", M, "--json", "--no-rollback", *FAST_CLI)
    assert proc.returncode == 1, proc.stderr
    [out] = json.loads(proc.stdout)
    assert out["step"] == "check:web" and "--no-rollback" in out["error"] and out["generation"] == failed_number
    assert read_files(ssh_run, host, [MARK]) == {MARK: "checks-bad\n"}
    text = clan.cli("machines", "generations", M).stdout
    assert "failed: check:web" in text, text
    start(clan, ssh_run, host, "checks-good")  # and an update repairs it


def test_rollback_reloads_and_restarts_what_changed(clan: DeployClan, host: hosts.HostInfo, ssh_run: SshRun) -> None:
    conf = "/etc/deploytest/app.conf"
    app = {"units": {"app.service": "/bin/sleep infinity"}, "restart_on": {"app.service": [conf]}}
    [r] = update(clan.set({M: base("rb-1", files={MARK: "rb-1\n", conf: "one\n"}, **app)}), [M], FAST)
    assert r.error is None, r
    first = r.generation
    pid = ssh_run(host, "systemctl show -p MainPID --value app.service").stdout.strip()
    # sshd also listens on 2222: a file of ssh.service (not a pyclan unit) that makes it reload
    port = "/etc/ssh/sshd_config.d/10-deploytest.conf"
    second = base("rb-2", files={MARK: "rb-2\n", conf: "two\n", port: "Port 22\nPort 2222\n"},
                  reloads={"ssh.service": [port]}, **app)
    second["checks"]["ssh-2222"] = {"tcp": 2222, "timeout": 5}
    [r] = update(clan.set({M: second}), [M], FAST)
    assert r.error is None and r.changed, (r, r.output)
    assert ssh_run(host, "ss -Hltn 'sport = :2222' | wc -l").stdout.strip() == "1"
    assert ssh_run(host, "systemctl show -p MainPID --value app.service").stdout.strip() != pid

    back = rollback(clan.open(), M, opts=FAST)
    assert back.error is None and back.generation == first, back
    # rollback is an activation: ssh.service reloaded without the drop-in, app restarted with "one"
    assert ssh_run(host, "ss -Hltn 'sport = :2222' | wc -l").stdout.strip() == "0"
    assert read_files(ssh_run, host, [conf, port]) == {conf: "one\n", port: None}
    assert ssh_run(host, "systemctl show -p MainPID --value app.service").stdout.strip() not in (pid, "0")


def unreachable(report: Any, previous: int) -> None:
    assert report.error is not None and report.error.startswith("rolled back: host unreachable after activation"), \
        (report, report.output)
    assert report.generation == previous and report.rolled_back_to == previous and not report.changed


def test_sshd_moved_to_another_port_reverts_by_itself(clan: DeployClan, host: hosts.HostInfo, ssh_run: SshRun) -> None:
    good = start(clan, ssh_run, host, "port-good")
    port = "/etc/ssh/sshd_config.d/10-deploytest.conf"
    moved = base("port-moved", files={MARK: "port-moved\n", port: "Port 2222\n"}, reloads={"ssh.service": [port]})
    moved["checks"] = {"ssh": {"tcp": 2222, "timeout": 5}}  # sshd works, on the wrong port for us
    [r] = update(clan.set({M: moved}), [M], FAST)
    unreachable(r, good)
    assert "a new SSH connection failed" in (r.error or "")
    assert read_files(ssh_run, host, [MARK, port]) == {MARK: "port-good\n", port: None}
    listed = {g.number: g for g in generations(clan.open(), M).items}
    assert listed[good].current and listed[good + 1].failed == "unconfirmed"
    no_failed_units(ssh_run, host)


def test_firewall_rule_that_blocks_ssh_reverts_by_itself(
    clan: DeployClan, host: hosts.HostInfo, ssh_run: SshRun
) -> None:
    good = start(clan, ssh_run, host, "fw-good")
    rules = "/etc/deploytest/fw.nft"
    # the classic mistake: policy drop, established connections kept, new SSH connections forgotten
    ruleset = ("table inet deploytest {\n  chain input {\n    type filter hook input priority 0; policy drop;\n"
               "    ct state established,related accept\n    iif lo accept\n  }\n}\n")
    unit = ("[Unit]\nDescription=firewall\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            f"ExecStart=/usr/sbin/nft -f {rules}\nExecStop=/usr/sbin/nft delete table inet deploytest\n"
            "[Install]\nWantedBy=multi-user.target\n")
    wall = base("fw-wall", files={MARK: "fw-wall\n", rules: ruleset}, packages=["nftables"],
                unit_files={"deploytest-fw.service": unit}, restart_on={"deploytest-fw.service": [rules]})
    [r] = update(clan.set({M: wall}), [M], FAST)
    unreachable(r, good)
    assert read_files(ssh_run, host, [MARK]) == {MARK: "fw-good\n"}  # a new connection works again
    no_failed_units(ssh_run, host)


def test_broken_network_config_reverts_by_itself(clan: DeployClan, host: hosts.HostInfo, ssh_run: SshRun) -> None:
    good = start(clan, ssh_run, host, "net-good")
    iface = ssh_run(host, f"ip -o -4 addr show to {host.address}/32 | cut -d' ' -f2").stdout.strip()
    assert iface, "the host's interface"
    # a network config that moves the host to an address nobody uses (and restores it when stopped)
    unit = ("[Unit]\nDescription=network config\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
            f"ExecStart=/sbin/ip addr replace 192.0.2.77/24 dev {iface}\n"
            f"ExecStart=/sbin/ip addr del {host.address}/24 dev {iface}\n"
            f"ExecStop=/sbin/ip addr replace {host.address}/24 dev {iface}\n"
            f"ExecStop=-/sbin/ip addr del 192.0.2.77/24 dev {iface}\n"
            "[Install]\nWantedBy=multi-user.target\n")
    net = base("net-broken", unit_files={"deploytest-net.service": unit}, checks={})
    # the answer of the activation is lost with the address: the step deadline ends the wait
    [r] = update(clan.set({M: net}), [M], replace(FAST, activation_timeout=15))
    unreachable(r, good)
    assert read_files(ssh_run, host, [MARK]) == {MARK: "net-good\n"}
    no_failed_units(ssh_run, host)


def kill_controller_after_activation(clan: DeployClan, host: hosts.HostInfo) -> None:
    """Run `machines update`, freeze it as soon as the activation starts and kill it once the host
    awaits its confirmation: after the activation, before the confirmation, whatever the timing."""
    watcher = subprocess.Popen(hosts.ssh_command(host, f"""
        i=0; until [ -f {R}/journal ]; do sleep 0.005; i=$((i+1)); [ $i -lt 6000 ] || exit 1; done; echo started
        i=0; until [ -f {R}/pending ]; do sleep 0.005; i=$((i+1)); [ $i -lt 6000 ] || exit 1; done; echo armed
    """), stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    controller = subprocess.Popen(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(clan.root), "machines", "update",
         M, "--confirm-timeout", "6"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ),
    )
    assert watcher.stdout is not None
    try:
        assert watcher.stdout.readline().strip() == "started"
        os.kill(controller.pid, signal.SIGSTOP)
        assert watcher.stdout.readline().strip() == "armed"
    finally:
        os.kill(controller.pid, signal.SIGKILL)
        controller.wait()
        watcher.wait(timeout=30)


def test_controller_killed_before_confirming_reverts(clan: DeployClan, host: hosts.HostInfo, ssh_run: SshRun) -> None:
    good = start(clan, ssh_run, host, "kill-good")
    clan.set({M: base("kill-new")})
    kill_controller_after_activation(clan, host)
    assert read_files(ssh_run, host, [MARK]) == {MARK: "kill-new\n"}  # activated, not yet confirmed
    wait_for_generation(ssh_run, host, good)
    assert read_files(ssh_run, host, [MARK]) == {MARK: "kill-good\n"}
    no_failed_units(ssh_run, host)

    # killed again; a new run that reaches the host before the deadline confirms what it finds
    kill_controller_after_activation(clan, host)
    [r] = update(clan.open(), [M], FAST)
    assert r.error is None and not r.changed and r.generation == good + 1, r  # the number it had before
    assert ssh_run(host, f"test -e {R}/pending || echo confirmed; systemctl is-active pyclan-confirm.timer",
                   check=False).stdout.split() == ["confirmed", "inactive"]
    assert read_files(ssh_run, host, [MARK]) == {MARK: "kill-new\n"}


def test_unreachable_host_costs_the_connect_timeout_and_progress_is_printed_without_a_tty(
    clan: DeployClan, host: hosts.HostInfo, ssh_run: SshRun
) -> None:
    lost = "dp-lost"  # an address in the hosts' network where nothing answers
    prefix = host.address.rsplit(".", 1)[0]
    clan.set({M: base("progress"), lost: base("lost")}, targets={lost: f"root@{prefix}.250"})
    proc = clan.cli("machines", "update", M, lost, *FAST_CLI)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    mine = [line.split(" [", 1)[0] for line in lines if line.startswith(f"{M}: ")]
    assert mine[0].startswith(f"{M}: connecting to") and f"{M}: comparing" in mine
    assert any(x.startswith(f"{M}: activating") for x in mine) and any(x.startswith(f"{M}: confirming") for x in mine)
    assert mine[-1].startswith(f"{M}: changed (generation")
    failed = [line for line in lines if line.startswith(f"{lost}: failed")]
    assert len(failed) == 1 and "cannot connect" in failed[0], proc.stderr
    assert lost in proc.stdout and "cannot connect" in proc.stdout


def test_activation_past_its_deadline_is_looked_up_and_confirmed(
    clan: DeployClan, host: hosts.HostInfo, ssh_run: SshRun
) -> None:
    start(clan, ssh_run, host, "slow-old")
    slow = base("slow-new", hooks={"slow": "sleep 4"})
    # the controller stops waiting after 1 s; a new connection finds the activation finished and
    # awaiting its confirmation, and gives it
    [r] = update(clan.set({M: slow}), [M], replace(FAST, activation_timeout=1))
    assert r.error is None and r.changed, (r, r.output)
    assert ssh_run(host, f"test -e {R}/pending || echo confirmed").stdout == "confirmed\n"
    assert read_files(ssh_run, host, [MARK]) == {MARK: "slow-new\n"}
