"""yggdrasil on two local hosts: keys from vars, peers from the internet service, pings over the overlay."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from catalogue_hosts import Deployed, deploy_service
from deploy_support import LocalHosts

from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

MACHINES = ["cat-ygg1", "cat-ygg2"]
TOML = """
[meta]
name = "ygg-host"
[machines.cat-ygg1]
[machines.cat-ygg2]
[instances.internet]
roles.default.machines.cat-ygg1.settings.host = "{address:cat-ygg1}"
roles.default.machines.cat-ygg2.settings.host = "{address:cat-ygg2}"
[instances.yggdrasil]
roles.default.tags = ["all"]
"""


@pytest.fixture(scope="module")
def deployed(local_hosts: LocalHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with pytest.MonkeyPatch.context() as mp:
        result = deploy_service(local_hosts, tmp_path_factory.mktemp("ygg"), mp, MACHINES, TOML)
        try:
            yield result
        finally:
            hosts.down(MACHINES)


def _address(deployed: Deployed, machine: str) -> str:
    return (deployed.clan.root / f"vars/per-machine/{machine}/yggdrasil/address/value").read_text().strip()


def test_each_host_has_its_address_from_vars_on_ygg(deployed: Deployed) -> None:
    for machine in MACHINES:
        out = deployed.run(deployed.hosts[machine], """
            systemctl is-active yggdrasil.service
            n=0; until ip -6 -o addr show dev ygg 2>/dev/null | grep -q inet6 || [ $n -ge 300 ]; do
                sleep 0.1; n=$((n + 1)); done
            ip -6 -o addr show dev ygg scope global | awk '{ print $4 }' | cut -d/ -f1
            nft list table ip6 pyclan-yggdrasil | grep -c 'iifname "ygg" drop'
        """).stdout.split()
        assert out == ["active", _address(deployed, machine), "1"]


def test_hosts_ping_each_other_by_name_over_yggdrasil(deployed: Deployed) -> None:
    for source, target in (("cat-ygg1", "cat-ygg2"), ("cat-ygg2", "cat-ygg1")):
        out = deployed.run(deployed.hosts[source], f"""
            getent ahostsv6 {target}.clan | head -1 | cut -d' ' -f1
            n=0; until ping -6 -c 1 -W 2 {target}.clan >/dev/null 2>&1 || [ $n -ge 60 ]; do n=$((n + 1)); done
            ping -6 -c 1 -W 2 {target}.clan >/dev/null && echo reached
        """, timeout=300).stdout.split()
        assert out == [_address(deployed, target), "reached"], (source, out)
