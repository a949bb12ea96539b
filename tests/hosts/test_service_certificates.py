"""certificates on two local hosts: TLS with a host certificate, verified against the trusted clan root."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from catalogue_hosts import Deployed, deploy_service
from deploy_support import LocalHosts

from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

MACHINES = ["cat-crt1", "cat-crt2"]
TOML = """
[meta]
name = "certificates-host"
[machines.cat-crt1]
[machines.cat-crt2]
[instances.certificates]
roles.ca.machines.cat-crt1.settings.tlds = ["foo"]
roles.default.machines.cat-crt2 = {}
"""


@pytest.fixture(scope="module")
def deployed(local_hosts: LocalHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with pytest.MonkeyPatch.context() as mp:
        result = deploy_service(local_hosts, tmp_path_factory.mktemp("crt"), mp, MACHINES, TOML)
        try:
            yield result
        finally:
            hosts.down(MACHINES)


def test_tls_to_the_ca_verifies_against_the_clan_root_in_the_system_store(deployed: Deployed) -> None:
    server, client = deployed.hosts["cat-crt1"], deployed.hosts["cat-crt2"]
    deployed.run(server, (
        "systemd-run --unit tls-host openssl s_server -quiet -accept 4443 -www "
        "-cert /etc/pyclan/certificates/host.fullchain.crt -key /var/lib/pyclan/secrets/certificates-host/host.key"
        " && n=0; until ss -Hltn 'sport = :4443' | grep -q . || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done"
    ))
    for name, ok in (("ca.foo", True), ("cat-crt1.foo", True), ("cat-crt2.foo", False)):
        proc = deployed.run(client, (
            f"echo | openssl s_client -connect {server.address}:4443 -servername {name} -verify_hostname {name} "
            "-verify_return_error -brief 2>&1"
        ), check=False)
        assert (proc.returncode == 0) == ok, (name, proc.stdout)
        if ok:
            assert f"Verified peername: {name}" in proc.stdout
