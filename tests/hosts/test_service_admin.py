"""admin on a local host: root logs in with an allowed key only, and has the generated password."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from catalogue_hosts import Deployed, deploy_service
from deploy_support import LocalHosts

from pyclan.hosts import control as hosts
from pyclan.vars.api import get

pytestmark = pytest.mark.hosts

MACHINES = ["cat-adm1"]


@pytest.fixture(scope="module")
def admin_host(local_hosts: LocalHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployed, Path]]:
    tmp = tmp_path_factory.mktemp("admin")
    key = tmp / "id_admin"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@test", "-f", str(key)], check=True)
    toml = f"""
[meta]
name = "admin-host"
[machines.cat-adm1]
[instances.admin]
roles.default.machines.cat-adm1 = {{}}
roles.default.settings.allowedKeys.deploy = "{{pyclan-client-key}}"
roles.default.settings.allowedKeys.myusersKey = "{(tmp / 'id_admin.pub').read_text().strip()}"
"""
    with pytest.MonkeyPatch.context() as mp:
        deployed = deploy_service(local_hosts, tmp, mp, MACHINES, toml, {"root-password": {"password": "s3cret root"}})
        try:
            yield deployed, key
        finally:
            hosts.down(MACHINES)


def test_root_logs_in_with_the_allowed_key_and_has_the_generated_password(admin_host: tuple[Deployed, Path]) -> None:
    deployed, key = admin_host
    host = deployed.hosts["cat-adm1"]
    known = key.parent / "known_hosts"
    pub = (deployed.clan.root / "vars/per-machine/cat-adm1/openssh/ssh.id_ed25519.pub/value").read_text().split()
    known.write_text(f"{host.address} {pub[0]} {pub[1]}\n")
    ssh = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
           "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10",
           f"root@{host.address}"]
    out = subprocess.run([*ssh, "hostname; sshd -T | grep -E '^(passwordauthentication|permitrootlogin) '"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "cat-adm1"
    assert "passwordauthentication no" in out.stdout

    _, expected = get(deployed.clan.open(), "cat-adm1", "root-password/password-hash")
    shadow = deployed.run(host, "getent shadow root | cut -d: -f2").stdout.strip()
    assert shadow == expected.decode().strip()
    keys = deployed.run(host, "cat /root/.ssh/authorized_keys").stdout.splitlines()
    assert len(keys) == 2 and keys[1].endswith("admin@test")  # deploy, myusersKey: sorted by name


def test_a_key_not_in_allowed_keys_is_refused(admin_host: tuple[Deployed, Path]) -> None:
    deployed, key = admin_host
    other = key.parent / "id_other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    out = subprocess.run(
        ["ssh", "-i", str(other), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", f"root@{deployed.hosts['cat-adm1'].address}",
         "true"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 255 and "Permission denied" in out.stderr
