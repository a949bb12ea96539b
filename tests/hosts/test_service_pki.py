"""pki on two local hosts: a TLS server on one, verified against the clan CA from the other's trust store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from catalogue_hosts import Deployed, deploy_service
from deploy_support import LocalHosts

from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

MACHINES = ["cat-pki1", "cat-pki2"]
TOML = """
[meta]
name = "pki-host"
domain = "lab.test"
[machines.cat-pki1]
[machines.cat-pki2]
[instances.pki]
module.name = "pki"
roles.default.tags = ["all"]
roles.default.machines.cat-pki1.settings.endpoints = ["music"]
"""


@pytest.fixture(scope="module")
def deployed(local_hosts: LocalHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with pytest.MonkeyPatch.context() as mp:
        result = deploy_service(local_hosts, tmp_path_factory.mktemp("pki"), mp, MACHINES, TOML)
        try:
            yield result
        finally:
            hosts.down(MACHINES)


def _serve(deployed: Deployed, endpoint: str, port: int) -> None:
    """`openssl s_server` on cat-pki1 with the endpoint's certificate chain and key from vars."""
    server = deployed.hosts["cat-pki1"]
    deployed.run(server, (
        f"systemd-run --unit tls-{endpoint} openssl s_server -quiet -accept {port} -www "
        f"-cert /etc/pyclan/pki/{endpoint}.fullchain.crt -key /var/lib/pyclan/secrets/cert-{endpoint}/{endpoint}.key"
        f" && n=0; until ss -Hltn 'sport = :{port}' | grep -q . || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done"
    ))


def _connect(deployed: Deployed, name: str, port: int) -> tuple[int, str]:
    """From cat-pki2: a TLS connection to cat-pki1 that must verify `name` against the system trust store."""
    address = deployed.hosts["cat-pki1"].address
    proc = deployed.run(deployed.hosts["cat-pki2"], (
        f"echo | openssl s_client -connect {address}:{port} -servername {name} -verify_hostname {name} "
        "-verify_return_error -brief 2>&1"
    ), check=False)
    return proc.returncode, proc.stdout


def test_a_tls_connection_between_two_hosts_verifies_against_the_clan_ca(deployed: Deployed) -> None:
    _serve(deployed, "cat-pki1", 4433)
    code, out = _connect(deployed, "cat-pki1.lab.test", 4433)
    assert code == 0, out
    assert "Verification: OK" in out and "Verified peername: cat-pki1.lab.test" in out


def test_an_endpoint_certificate_verifies_for_its_name_and_not_for_another(deployed: Deployed) -> None:
    _serve(deployed, "music", 4434)
    code, out = _connect(deployed, "music.lab.test", 4434)
    assert code == 0 and "Verified peername: music.lab.test" in out, out
    code, out = _connect(deployed, "git.lab.test", 4434)
    assert code != 0 and "hostname mismatch" in out, out


def test_every_member_trusts_the_ca_and_the_key_is_for_group_clan_pki(deployed: Deployed) -> None:
    for machine in MACHINES:
        out = deployed.run(deployed.hosts[machine], (
            "openssl verify /usr/local/share/ca-certificates/clan-pki-root-ca.crt; "
            f"stat -c '%G %a' /var/lib/pyclan/secrets/cert-{machine}/{machine}.key"
        )).stdout.splitlines()
        assert out == ["/usr/local/share/ca-certificates/clan-pki-root-ca.crt: OK", "clan-pki 640"]
