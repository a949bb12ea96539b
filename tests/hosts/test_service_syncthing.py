"""syncthing on two local hosts: a file written on one appears on the other, byte for byte."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from catalogue_hosts import Deployed, deploy_service
from deploy_support import LocalHosts

from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

MACHINES = ["cat-sync1", "cat-sync2"]
TOML = """
[meta]
name = "sync-host"
[machines.cat-sync1]
[machines.cat-sync2]
[instances.internet]
roles.default.machines.cat-sync1.settings.host = "{address:cat-sync1}"
roles.default.machines.cat-sync2.settings.host = "{address:cat-sync2}"
[instances.syncthing]
roles.peer.tags = ["all"]
roles.peer.settings.folders.shared = { path = "/srv/shared" }
"""


@pytest.fixture(scope="module")
def deployed(local_hosts: LocalHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with pytest.MonkeyPatch.context() as mp:
        result = deploy_service(local_hosts, tmp_path_factory.mktemp("sync"), mp, MACHINES, TOML)
        try:
            yield result
        finally:
            hosts.down(MACHINES)


def test_each_peer_runs_with_the_device_id_from_vars(deployed: Deployed) -> None:
    for machine in MACHINES:
        expected = (deployed.clan.root / f"vars/per-machine/{machine}/syncthing/id/value").read_text().strip()
        out = deployed.run(deployed.hosts[machine], (
            "systemctl is-active syncthing.service; "
            "runuser -u syncthing -- syncthing serve --device-id --home=/var/lib/syncthing"
        )).stdout.split()
        assert out == ["active", expected]


def test_a_file_written_on_one_host_appears_on_the_other(deployed: Deployed) -> None:
    one, two = deployed.hosts["cat-sync1"], deployed.hosts["cat-sync2"]
    deployed.run(one, "head -c 100000 /dev/urandom > /tmp/payload && install -o syncthing -g syncthing -m 0644 "
                      "/tmp/payload /srv/shared/payload.bin && sha256sum /srv/shared/payload.bin")
    want = deployed.run(one, "sha256sum < /srv/shared/payload.bin").stdout.split()[0]
    # syncthing connects (tcp://<address>:22000 from the internet service), then scans and pulls
    got = deployed.run(two, """
        n=0
        until [ -f /srv/shared/payload.bin ] && [ "$(sha256sum < /srv/shared/payload.bin | cut -d' ' -f1)" = WANT ]
        do
            [ $n -ge 1800 ] && break
            sleep 0.1; n=$((n + 1))
        done
        sha256sum < /srv/shared/payload.bin 2>/dev/null | cut -d' ' -f1
    """.replace("WANT", want), timeout=300).stdout.strip()
    assert got == want
