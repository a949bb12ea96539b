"""Real local hosts: boot, ssh, isolation, network, apt, reboot, teardown, crash recovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyclan.cli.hosts import app
from pyclan.errors import ClanError
from pyclan.hosts import control as hosts
from pyclan.hosts import system as hosts_system
from pyclan.hosts.config import HostsConfig, validate_name
from pyclan.hosts.system import alive, cgroup_mounts

LocalHosts = Callable[..., list[hosts.HostInfo]]  # the fixtures of conftest.py
SshRun = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.hosts


def leftovers(cfg: HostsConfig, info: hosts.HostInfo) -> list[str]:
    """Everything of host `info` that is still on the machine (empty when fully removed)."""
    found = []
    if Path("/run/netns", cfg.netns(info.name)).exists():
        found.append("netns")
    if Path("/sys/class/net", cfg.veth(info.index)).exists():
        found.append("veth")
    found += [f"cgroup {m}" for m in cgroup_mounts() if (m / cfg.cgroup_rel / info.name).exists()]
    if cfg.state_file(info.name).exists():
        found.append("state file")
    if cfg.host_run_dir(info.name).exists():
        found.append("overlay dirs")
    if info.address in cfg.known_hosts.read_text():
        found.append("known_hosts line")
    if info.pid and alive(info.pid, None):
        found.append(f"supervisor {info.pid}")
    root = str(cfg.host_run_dir(info.name))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            mounts = Path(f"/proc/{pid}/mountinfo").read_text()
        except OSError:
            continue
        if root in args:
            found.append(f"process {pid}: {args[:80]}")
        if root in mounts:
            found.append(f"mount in the namespace of process {pid}")
    return found


def test_two_hosts_boot_with_systemd_and_ssh(local_hosts: LocalHosts, ssh_run: SshRun) -> None:
    a, b = local_hosts(["ha", "hb"])
    assert (a.name, b.name) == ("ha", "hb")
    assert a.running and b.running and a.address != b.address
    for host in (a, b):
        out = ssh_run(host, "systemctl is-system-running; hostname; cat /proc/1/comm").stdout.split()
        assert out == ["running", host.name, "systemd"]


def test_hosts_are_isolated(local_hosts: LocalHosts, ssh_run: SshRun) -> None:
    a, b = local_hosts(["ha", "hb"])
    ssh_run(a, "echo only-on-a > /etc/pyclan-test-marker")
    assert ssh_run(a, "cat /etc/pyclan-test-marker").stdout == "only-on-a\n"
    assert ssh_run(b, "test -e /etc/pyclan-test-marker", check=False).returncode == 1
    assert not Path("/etc/pyclan-test-marker").exists()
    # own machine-id and own cgroup tree: one host's units are not the other's
    ids = {ssh_run(h, "cat /etc/machine-id").stdout.strip() for h in (a, b)}
    assert len(ids) == 2


def test_hosts_reach_each_other_over_the_bridge(local_hosts: LocalHosts, ssh_run: SshRun) -> None:
    a, b = local_hosts(["ha", "hb"])
    ssh_run(a, f"ping -c 1 -W 5 {b.address}")
    ssh_run(b, f"ping -c 1 -W 5 {a.address}")


def test_apt_install_through_the_proxy(hosts_config: HostsConfig, local_hosts: LocalHosts, ssh_run: SshRun) -> None:
    a, b = local_hosts(["ha", "hb"])
    ssh_run(
        a,
        # the rootfs has the package lists of its build; refresh them only if they went stale
        "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq hello "
        "|| { apt-get update -qq && apt-get install -y -qq hello; }",
        timeout=180,
    )
    assert ssh_run(a, "hello").stdout == "Hello, world!\n"
    assert "/hello_" in (hosts_config.proxy_dir / "log/apt-cacher.log").read_text()
    assert ssh_run(b, "command -v hello", check=False).returncode != 0


def test_status_host_for_and_known_hosts(hosts_config: HostsConfig, local_hosts: LocalHosts) -> None:
    a, b = local_hosts(["ha", "hb"])
    by_name = {h.name: h for h in hosts.status()}
    assert by_name["ha"] == a and by_name["hb"] == b
    assert hosts.host_for("ha") == a
    assert hosts.host_for("not-a-host") is None
    lines = hosts.known_hosts_path().read_text().splitlines()
    assert f"{a.address} {a.host_key}" in lines and f"{b.address} {b.host_key}" in lines
    assert hosts.client_key_path() == hosts_config.client_key
    data = json.loads(json.dumps(a.to_json()))
    assert {"name", "address", "host_key", "running", "pid"} <= data.keys()


def test_up_of_running_hosts_is_a_no_op(local_hosts: LocalHosts) -> None:
    before = local_hosts(["ha", "hb"])
    again = hosts.up(["hb", "ha"])
    assert [h.pid for h in again] == [before[1].pid, before[0].pid]  # the same processes: nothing restarted


def test_cli_status_json(local_hosts: LocalHosts) -> None:
    local_hosts(["ha"])
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert "ha" in {h["name"] for h in json.loads(result.stdout)}


def test_reboot_inside_a_host(local_hosts: LocalHosts, ssh_run: SshRun) -> None:
    (host,) = local_hosts(["hreboot"], fresh=True)
    # /run is a fresh tmpfs after a reboot; /etc is on the host's overlay and must survive it
    ssh_run(host, "touch /etc/survives-reboot /run/gone-after-reboot; systemctl reboot", check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        proc = ssh_run(host, "test ! -e /run/gone-after-reboot && systemctl is-system-running --wait", check=False)
        if proc.stdout.strip() == "running":
            break
        time.sleep(0.1)
    else:
        pytest.fail("host did not come back after reboot")
    ssh_run(host, "test -e /etc/survives-reboot")
    assert hosts.host_for("hreboot") is not None
    hosts.down(["hreboot"])


def test_down_leaves_nothing_behind(hosts_config: HostsConfig, local_hosts: LocalHosts) -> None:
    (gone,) = local_hosts(["hgone"], fresh=True)
    (kept,) = local_hosts(["ha"])
    assert hosts.down(["hgone"]) == ["hgone"]
    assert leftovers(hosts_config, gone) == []
    assert hosts.host_for("ha") == kept  # the other host is untouched


@pytest.mark.parametrize("next_call", ["up", "down"])
def test_crashed_host_is_cleaned_by_next_call(
    hosts_config: HostsConfig, local_hosts: LocalHosts, next_call: str
) -> None:
    (crashed,) = local_hosts(["hcrash"], fresh=True)
    assert crashed.pid is not None
    os.kill(crashed.pid, signal.SIGKILL)  # the supervisor dies; nspawn, netns, cgroups stay
    time.sleep(0.2)
    assert hosts.host_for("hcrash") is None
    assert [h.running for h in hosts.status() if h.name == "hcrash"] == [False]
    if next_call == "up":
        hosts.up(["ha"])
    else:
        hosts.down(["not-running"])
    assert leftovers(hosts_config, crashed) == []
    assert hosts.host_for("ha") is not None


def test_whole_teardown_removes_proxy_and_bridge(hosts_config: HostsConfig, local_hosts: LocalHosts) -> None:
    infos = local_hosts(["ha", "hb"])
    hosts.down()
    assert hosts.status() == []
    for info in infos:
        assert leftovers(hosts_config, info) == []
    assert not Path("/sys/class/net", hosts_config.bridge).exists()
    assert not hosts_config.proxy_dir.exists()
    acng = subprocess.run(["pgrep", "-f", f"BindAddress={hosts_config.bridge_address}"], capture_output=True)
    assert acng.stdout.strip() == b""


def test_a_bridge_of_someone_else_is_never_touched(hosts_config: HostsConfig) -> None:
    foreign = "pcforeign0"
    subprocess.run(["ip", "link", "add", foreign, "type", "bridge"], check=True)
    try:
        cfg = HostsConfig(
            hosts_config.state_dir / "other", hosts_config.rootfs, foreign, "10.231.250", hosts_config.apt_cache
        )
        with pytest.raises(ClanError, match="is used by something else"):
            hosts.up(["hx"], config=cfg)
        hosts.down(config=cfg)
        assert Path("/sys/class/net", foreign).exists()
    finally:
        subprocess.run(["ip", "link", "del", foreign], check=False)


def test_root_is_required() -> None:
    with pytest.raises(ClanError) as exc:
        hosts.require_root(uid=1000)
    (problem,) = exc.value.problems
    assert problem.kind == "deploy-error"
    assert problem.message.startswith("pyclan hosts needs root:")
    hosts.require_root(uid=0)


@pytest.mark.parametrize("name", ["", "Upper", "under_score", "-dash", "x" * 64, "a.b"])
def test_invalid_machine_names_are_rejected(name: str) -> None:
    with pytest.raises(ClanError):
        validate_name(name)
    validate_name("web-1")
    validate_name("x" * 63)


def test_missing_tools_name_the_packages_to_install() -> None:
    with pytest.raises(ClanError) as exc:
        hosts_system.require_tools(["ip", "no-such-tool-pyclan"])
    (problem,) = exc.value.problems
    assert "no-such-tool-pyclan" in problem.message
    assert problem.hint is not None and "apt-get install" in problem.hint


def test_configuration_from_env_is_validated() -> None:
    cfg = HostsConfig.from_env({"PYCLAN_HOSTS_BRIDGE": "pcx1", "PYCLAN_HOSTS_NET": "10.1.2"})
    assert (cfg.bridge_address, cfg.address(1), cfg.veth(244)) == ("10.1.2.1", "10.1.2.11", "pcx1-244")
    for env in ({"PYCLAN_HOSTS_BRIDGE": "a-bridge-name-too-long"}, {"PYCLAN_HOSTS_NET": "10.1.300"}):
        with pytest.raises(ClanError):
            HostsConfig.from_env(env)
