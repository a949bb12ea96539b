"""sshd's clan CA on real hosts: a client trusts a host that joined after it was deployed, by its certificate.

The client is deployed first, alone in the sshd instance. Then a new server joins the inventory and only
the server is deployed: the client's known_hosts never saw the server's key, only the clan CA
(`@cert-authority`). ssh from the client with StrictHostKeyChecking=yes and an empty user known_hosts
succeeds under `<server>.<meta.domain>`; under a name outside the CA's domains it is refused.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import DeployClan, LocalHosts, clan_ssh

from pyclan.vars.keys import keygen

pytestmark = pytest.mark.hosts

CLIENT, SERVER = "ca-client", "ca-server"


def _inventory(machines: list[str], addresses: dict[str, str], admin_key: str) -> dict[str, object]:
    return {
        "meta": {"name": "sshd-ca", "domain": "fleet.test"},
        "machines": {m: {} for m in machines},
        "instances": {
            "internet": {
                "roles": {"default": {"machines": {m: {"settings": {"host": addresses[m]}} for m in machines}}}
            },
            "sshd": {
                "roles": {
                    "server": {"tags": ["all"], "settings": {"authorizedKeys": {"tester": admin_key}}},
                    "client": {"machines": {CLIENT: {}}},
                }
            },
        },
    }


@pytest.fixture
def clan_root(tmp_path: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
        mp.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
        root = tmp_path / "clan"
        root.mkdir()
        keygen(root, "tester")
        yield root


def test_a_fresh_server_is_trusted_by_its_certificate_alone(
    clan_root: Path, local_hosts: LocalHosts, tmp_path: Path
) -> None:
    infos = {h.name: h for h in local_hosts([CLIENT, SERVER], fresh=True)}
    addresses = {m: h.address for m, h in infos.items()}
    key = tmp_path / "tester"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tester", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text().strip()
    clan = DeployClan(clan_root)
    inventory = clan_root / "inventory.json"
    try:
        # 1. the client alone (it is a server of its own, so the instance has a CA)
        inventory.write_text(json.dumps(_inventory([CLIENT], addresses, public)))
        clan.cli("vars", "generate", check=True, timeout=300)
        clan.cli("machines", "update", CLIENT, check=True, timeout=600)
        # 2. a new server joins; only it is deployed, the client keeps its known_hosts
        inventory.write_text(json.dumps(_inventory([CLIENT, SERVER], addresses, public)))
        clan.cli("vars", "generate", SERVER, check=True, timeout=300)
        clan.cli("machines", "update", SERVER, check=True, timeout=600)

        run = clan_ssh(clan_root)
        server_key = " ".join((clan_root / f"vars/per-machine/{SERVER}/openssh/ssh.id_ed25519.pub/value")
                              .read_text().split()[:2])
        known = run(infos[CLIENT], "cat /etc/ssh/ssh_known_hosts").stdout
        assert server_key not in known  # the client never saw the new server's key
        assert any(line.startswith("@cert-authority *.fleet.test ") for line in known.splitlines())
        served = run(infos[SERVER], "ssh-keygen -L -f /etc/ssh/ssh_host_ed25519_key-cert.pub").stdout
        assert f"{SERVER}.fleet.test" in served

        ssh = ("ssh -F none -i /root/tester -o BatchMode=yes -o StrictHostKeyChecking=yes "
               "-o UserKnownHostsFile=/dev/null -o ConnectTimeout=10")
        script = f"""
umask 077
cat > /root/tester <<'EOF'
{key.read_text()}EOF
names='{addresses[SERVER]} {SERVER}.fleet.test {SERVER}.elsewhere.test'
grep -qxF "$names" /etc/hosts || echo "$names" >> /etc/hosts
{ssh} root@{SERVER}.fleet.test hostname
if {ssh} root@{SERVER}.elsewhere.test hostname 2>/root/refused; then echo OUTSIDE-DOMAIN-ACCEPTED; fi
grep -c 'Host key verification failed' /root/refused
"""
        out = run(infos[CLIENT], script)
        assert out.stdout.split() == [SERVER, "1"], out.stderr
    finally:
        from pyclan.hosts import control as hosts

        hosts.down([CLIENT, SERVER])
