"""dyndns on a local host: ddclient updates a dyndns2 endpoint with the host's address and the prompted password,
and pyclan's porkbun updater sends Porkbun's JSON call with the prompted secret API key, side by side.

The endpoint (`tests/services/dyndns_endpoint.py`) listens on the controller's side of the hosts' bridge and
speaks both; the host reads its address from `eth0`, so nothing leaves the test network. The same host then
shows a health check of a real service rolling an update back: the node exporter's port is taken, its check
fails, and the host is on its previous generation again, with the check's output in the report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from catalogue_hosts import Deployed, deploy_service
from deploy_support import LocalHosts

from pyclan.hosts import control as hosts
from pyclan.hosts.config import HostsConfig

pytestmark = pytest.mark.hosts

M = "cat-dyn1"
SECRET = "dyndns-dyn-example.org"
PASSWORD = "pr0mpted'pass#word"
PORKBUN_SECRET = "dyndns-porkbun-example.net"
PORKBUN_KEY = "sk1_prompted-porkbun-secret"
ENDPOINT = Path(__file__).parents[1] / "services" / "dyndns_endpoint.py"
TOML = """
[meta]
name = "dyndns-host"
[machines.cat-dyn1]
[instances.dyndns]
roles.default.machines.cat-dyn1.settings.period = 1
roles.default.machines.cat-dyn1.settings.interface = "eth0"
[instances.dyndns.roles.default.machines.cat-dyn1.settings.settings.home]
provider = "dyn"
domain = "example.org"
extraSettings = { host = "@,home", username = "jon", server = "http://@SERVER@" }
[instances.dyndns.roles.default.machines.cat-dyn1.settings.settings.pb]
provider = "porkbun"
domain = "example.net"
secret_field_name = "secret_api_key"
extraSettings = { host = "www", api_key = "pk1_host-test", server = "http://@SERVER@" }
"""
MONITORING = """
[instances.monitoring]
roles.client.machines.cat-dyn1 = {}
"""


@dataclass
class Setup:
    deployed: Deployed
    log: Path


def _requests(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def setup(
    local_hosts: LocalHosts, hosts_config: HostsConfig, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("dyndns")
    log = tmp / "requests.jsonl"
    local_hosts([M], fresh=True)  # the bridge exists from now on: the endpoint listens on its address
    endpoint = subprocess.Popen([sys.executable, str(ENDPOINT), hosts_config.bridge_address, "0", str(log)],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert endpoint.stdout is not None
        port = endpoint.stdout.readline().strip()
        toml = TOML.replace("@SERVER@", f"{hosts_config.bridge_address}:{port}")
        with pytest.MonkeyPatch.context() as mp:
            deployed = deploy_service(lambda names, fresh=False: local_hosts(names), tmp, mp, [M], toml,
                                      {SECRET: {SECRET: PASSWORD}, PORKBUN_SECRET: {PORKBUN_SECRET: PORKBUN_KEY}})
            yield Setup(deployed, log)
    finally:
        endpoint.terminate()
        endpoint.wait(timeout=30)
        hosts.down([M])


def test_ddclient_updates_the_endpoint_with_the_hosts_address_and_the_prompted_password(setup: Setup) -> None:
    host = setup.deployed.hosts[M]
    end = time.monotonic() + 90
    while not [r for r in _requests(setup.log) if r["path"] == "/nic/update"]:
        assert time.monotonic() < end, "ddclient sent no update: " + setup.deployed.run(
            host, "journalctl -u dyndns.service --no-pager | tail -20", check=False).stdout
        time.sleep(0.5)
    [update] = [r for r in _requests(setup.log) if r["path"] == "/nic/update"]
    assert update["query"]["hostname"] == "example.org,home.example.org"
    assert update["query"]["myip"] == host.address
    assert (update["user"], update["password"]) == ("jon", PASSWORD)
    out = setup.deployed.run(host, "systemctl is-active dyndns.service; systemctl is-enabled ddclient.service; "
                                   "stat -c '%U %a' /var/lib/dyndns/ddclient.conf", check=False).stdout.split()
    assert out == ["active", "disabled", "dyndns", "600"]  # Debian's own ddclient.service is off


def test_porkbun_updater_sends_the_hosts_address_and_the_prompted_secret_key(setup: Setup) -> None:
    host = setup.deployed.hosts[M]
    end = time.monotonic() + 90
    while not [r for r in _requests(setup.log) if r["method"] == "POST"]:
        assert time.monotonic() < end, "no porkbun update: " + setup.deployed.run(
            host, "journalctl -u dyndns-porkbun.service --no-pager | tail -20", check=False).stdout
        time.sleep(0.5)
    [update] = [r for r in _requests(setup.log) if r["method"] == "POST"]
    assert update["path"] == "/api/json/v3/dns/editByNameType/example.net/A/www"
    assert update["json"] == {"apikey": "pk1_host-test", "secretapikey": PORKBUN_KEY, "content": host.address}
    out = setup.deployed.run(host, "systemctl is-active dyndns-porkbun.timer; "
                                   "systemctl show -p Result --value dyndns-porkbun.service; "
                                   "journalctl -u dyndns-porkbun.service --no-pager", check=False).stdout
    assert out.split()[:2] == ["active", "success"], out
    assert "www.example.net A: set to" in out and PORKBUN_KEY not in out  # the journal has no secret


def test_a_failing_check_of_a_real_service_rolls_the_host_back(setup: Setup) -> None:
    deployed, host = setup.deployed, setup.deployed.hosts[M]
    before = deployed.run(host, "readlink /var/lib/pyclan/current").stdout.strip()
    # something else holds the node exporter's port: it cannot start, and its check says who has the port
    deployed.run(host, "systemd-run --unit=port-9100-taken /usr/sbin/sshd -D -p 9100 -o PidFile=none && "
                       "n=0; until ss -Hltn 'sport = :9100' | grep -q . || [ $n -ge 100 ]; do sleep 0.1; "
                       "n=$((n + 1)); done")
    try:
        (deployed.clan.root / "clan.toml").write_text((deployed.clan.root / "clan.toml").read_text() + MONITORING)
        # only the client role: the server (a prometheus install) does not matter here, hence --no-check
        proc = deployed.clan.cli("machines", "update", M, "--json", "--no-check", timeout=900)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        [report] = json.loads(proc.stdout)
        assert report["step"] == "check:monitoring-node-exporter-listens", report
        assert "health check 'monitoring-node-exporter-listens'" in report["error"]
        assert "switched back to generation" in report["error"], report["error"]
        assert "TCP port 9100 is not held by prometheus-node" in report["output"] and '"sshd"' in report["output"]
        after = deployed.run(host, "readlink /var/lib/pyclan/current; systemctl is-active dyndns.service; "
                                   "dpkg-query -W -f '${db:Status-Status}' prometheus-node-exporter || true",
                             check=False).stdout.split()
        assert after[:2] == [before, "active"] and after[2:] != ["installed"], after  # the old generation
    finally:
        deployed.run(host, "systemctl stop port-9100-taken.service", check=False)
