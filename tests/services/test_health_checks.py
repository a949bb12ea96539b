"""Every bundled service that runs a daemon declares health checks (issue 11): the host runs them after
activation and switches back to the previous generation when one fails."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from catalogue_support import check_and_build

from pyclan.clan import Clan, open_clan
from pyclan.config.machine_config import CheckSpec
from pyclan.services.library.borgbackup import BORG_USER, repos_check
from pyclan.services.library.monitoring import port_owner_check
from pyclan.services.library.zerotier import ZEROTIER_CHECK
from pyclan.vars.keys import keygen

MakeClan = Callable[..., Clan]

CLAN = """
[meta]
name = "checks"
[machines.hub]
[machines.laptop]
[instances.wg]
module.name = "wireguard"
roles.controller.machines.hub.settings.endpoint = "hub.example.org"
roles.peer.machines.laptop = {}
[instances.zerotier]
roles.controller.machines.hub = {}
roles.peer.machines.laptop = {}
[instances.yggdrasil]
roles.default.tags = ["all"]
[instances.syncthing]
roles.peer.tags = ["all"]
roles.peer.settings.folders.docs.path = "/srv/docs"
[instances.tor]
roles.server.machines.hub = {}
roles.client.machines.laptop = {}
[instances.monitoring]
roles.client.tags = ["all"]
roles.server.machines.hub = {}
[instances.borgbackup]
roles.server.machines.hub = {}
roles.client.machines.laptop = {}
[instances.dyndns]
roles.default.machines.hub.settings.settings.home = { provider = "namecheap", domain = "example.org" }
[instances.pki]
module.name = "pki"
roles.default.tags = ["all"]
[instances.sshd]
roles.server.tags = ["all"]
"""


def _checks(clan: Clan, machine: str) -> dict[str, tuple[str, str]]:
    return {name: (c.kind, c.target) for name, c in clan.evaluator.config(machine).checks.items()}


def test_services_with_daemons_declare_their_checks_and_they_build(
    make_clan: MakeClan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_clan(CLAN).dir
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "admin.age.key"))
    keygen(root, "tester")
    secret = "dyndns-namecheap-example.org"
    built = check_and_build(open_clan(root, {}), {secret: {secret: "pw"}})
    clan = built.clan
    for machine in ("hub", "laptop"):  # names, units, ports and commands are what the manifest accepts
        assert {c.name for c in built.generations[machine].manifest.checks} == set(_checks(clan, machine))
    hub, laptop = _checks(clan, "hub"), _checks(clan, "laptop")
    repos = hub.pop("borgbackup-borgbackup-repos")
    assert repos[0] == "command" and "/var/lib/borgbackup/laptop" in repos[1]
    assert hub == {
        "sshd-listens": ("tcp", "22"),
        "wireguard-wg-up": ("command", "ip link show dev wg up | grep -q ."),
        "zerotier-one-running": ("command", ZEROTIER_CHECK),
        "yggdrasil-running": ("unit", "yggdrasil.service"),
        "yggdrasil-interface-up": ("command", "ip link show dev ygg up | grep -q ."),
        "syncthing-running": ("unit", "syncthing.service"),
        "syncthing-api-listens": ("tcp", "8384"),
        "tor-running": ("unit", "tor@default.service"),
        "monitoring-node-exporter-running": ("unit", "prometheus-node-exporter.service"),
        "monitoring-node-exporter-listens": ("command", port_owner_check(9100, "prometheus-node")),
        "monitoring-prometheus-running": ("unit", "prometheus.service"),
        "monitoring-prometheus-listens": ("command", port_owner_check(9090, "prometheus")),
        "borgbackup-sshd-running": ("unit", "ssh.service"),
        "dyndns-running": ("unit", "dyndns.service"),
    }
    assert laptop == {
        "sshd-listens": ("tcp", "22"),
        "wireguard-wg-up": ("command", "ip link show dev wg up | grep -q ."),
        "zerotier-one-running": ("command", ZEROTIER_CHECK),
        "yggdrasil-running": ("unit", "yggdrasil.service"),
        "yggdrasil-interface-up": ("command", "ip link show dev ygg up | grep -q ."),
        "syncthing-running": ("unit", "syncthing.service"),
        "syncthing-api-listens": ("tcp", "8384"),
        "tor-running": ("unit", "tor@default.service"),
        "tor-socks-listens": ("tcp", "9050"),
        "monitoring-node-exporter-running": ("unit", "prometheus-node-exporter.service"),
        "monitoring-node-exporter-listens": ("command", port_owner_check(9100, "prometheus-node")),
        "borgbackup-job-hub-timer": ("unit", "borgbackup-job-hub.timer"),
    }  # pki has no daemon (certificates are made at `vars generate`), so it declares none


def test_the_borg_repository_check_fails_with_a_reason(tmp_path: Path) -> None:
    script = repos_check(str(tmp_path), ["gone"])
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and done.stdout.strip() == (
        f"{tmp_path}/gone is not a repository folder that {BORG_USER} can write")


def test_the_port_owner_check_names_who_holds_the_port() -> None:
    me = Path("/proc/self/comm").read_text().strip()  # this test's process listens
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        mine = subprocess.run(["sh", "-c", port_owner_check(port, me)], capture_output=True, text=True,
                              check=False)
        other = subprocess.run(["sh", "-c", port_owner_check(port, "prometheus")], capture_output=True,
                               text=True, check=False)
    assert mine.returncode == 0, mine.stdout
    assert other.returncode == 1 and f"TCP port {port} is not held by prometheus" in other.stdout
    assert f'"{me}"' in other.stdout  # who holds it instead


def test_checks_have_timeouts() -> None:
    assert CheckSpec.model_fields["timeout"].default == 10
