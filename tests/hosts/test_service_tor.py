"""tor on a local host: the onion service runs with the key from vars and tor reports the same hostname.

Reaching the onion service over Tor needs the internet, which tests do not have; what is checked is
everything up to that: the config passes `tor --verify-config`, tor@default runs, and tor derives
from the deployed key exactly the hostname that is the machine's public var.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from catalogue_hosts import Deployed, deploy_service
from deploy_support import LocalHosts

from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

MACHINES = ["cat-tor1"]
TOML = """
[meta]
name = "tor-host"
[machines.cat-tor1]
[instances.tor]
roles.server.machines.cat-tor1 = {}
roles.server.settings.secretHostname = false
roles.client.machines.cat-tor1 = {}
"""


@pytest.fixture(scope="module")
def deployed(local_hosts: LocalHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with pytest.MonkeyPatch.context() as mp:
        result = deploy_service(local_hosts, tmp_path_factory.mktemp("tor"), mp, MACHINES, TOML)
        try:
            yield result
        finally:
            hosts.down(MACHINES)


def test_tor_runs_the_onion_service_with_the_hostname_of_the_public_var(deployed: Deployed) -> None:
    host = deployed.hosts["cat-tor1"]
    expected = (deployed.clan.root / "vars/per-machine/cat-tor1/tor_tor/hostname/value").read_text()
    deployed.run(host, "tor --defaults-torrc /usr/share/tor/tor-service-defaults-torrc -f /etc/tor/torrc "
                       "--RunAsDaemon 0 --verify-config")
    out = deployed.run(host, """
        systemctl is-active tor@default.service
        n=0; until [ -s /var/lib/tor/onion/clan_tor/hostname ] || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
        cat /var/lib/tor/onion/clan_tor/hostname
        stat -c '%U %a' /var/lib/tor/onion/clan_tor/hs_ed25519_secret_key
    """).stdout.splitlines()
    assert out == ["active", expected.strip(), "debian-tor 600"]


def test_the_client_has_its_socks_proxy_and_torsocks(deployed: Deployed) -> None:
    script = """
        command -v torsocks; grep -c '^SocksPort 0' /etc/tor/torrc
        n=0; until ss -Hltn 'sport = :9050' | grep -q . || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
        ss -Hltn 'sport = :9050' | awk '{ print $4 }'
    """
    out = deployed.run(deployed.hosts["cat-tor1"], script, check=False).stdout.split()
    assert out == ["/usr/bin/torsocks", "0", "127.0.0.1:9050"]
