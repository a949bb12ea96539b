"""The quickstart clan (plus a third laptop) deployed to local hosts, checked on the hosts themselves.

The tests run in file order on one deployment: what every service put on the hosts, then a
no-op update, then removals and a rollback.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import DeployClan, LocalHosts, SshRun, clan_ssh, read_files

from pyclan.hosts import control as hosts
from pyclan.vars.api import decrypt_secret, get

pytestmark = pytest.mark.hosts

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
LAPTOPS = ["sally-laptop", "fred-laptop", "kim-laptop"]
MACHINES = [*LAPTOPS, "backup-server"]
ANSWERS = {"wifi.home": {"network-name": "home", "password": "correct horse battery"}}


@dataclass
class Quickstart:
    clan: DeployClan
    hosts: dict[str, hosts.HostInfo]
    first: list[dict[str, object]]
    run: SshRun  # commands on the hosts, trusting the host keys the sshd service gave them

    def toml(self) -> str:
        return (self.clan.root / "clan.toml").read_text()

    def rewrite(self, text: str) -> None:
        (self.clan.root / "clan.toml").write_text(text)


def _prepare(root: Path, addresses: dict[str, str]) -> None:
    """The example's inventory, with a third laptop and the local hosts' addresses."""
    root.mkdir(parents=True)
    text = (QUICKSTART / "clan.toml").read_text()
    kim = '[machines.kim-laptop]\ntags = ["laptop"]\n\n'
    text = text.replace("[machines.backup-server]", kim + "[machines.backup-server]")
    for machine, address in addresses.items():
        pattern = rf'(roles\.default\.machines\.{machine}\.settings\.host = )"[^"]*"'
        text, found = re.subn(pattern, rf'\1"{address}"', text)
        if not found:
            line = f'roles.default.machines.{machine}.settings.host = "{address}"\n'
            text = text.replace("[instances.internet]\n", "[instances.internet]\n" + line)
    (root / "clan.toml").write_text(text)
    if (QUICKSTART / "services").is_dir():
        shutil.copytree(QUICKSTART / "services", root / "services")


@pytest.fixture(scope="module")
def quickstart(local_hosts: LocalHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quickstart]:
    tmp = tmp_path_factory.mktemp("quickstart")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYCLAN_CACHE_DIR", str(tmp / "cache"))
        mp.setenv("PYCLAN_AGE_KEY_FILE", str(tmp / "age.key"))
        infos = {h.name: h for h in local_hosts(MACHINES, fresh=True)}
        _prepare(tmp / "clan", {m: h.address for m, h in infos.items()})
        clan = DeployClan(tmp / "clan")
        clan.cli("vars", "keygen", "--user", "tester", check=True)
        (tmp / "answers.json").write_text(json.dumps(ANSWERS))
        clan.cli("vars", "generate", "--prompt-values", str(tmp / "answers.json"), check=True, timeout=600)
        proc = clan.cli("machines", "update", "--json", timeout=900)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        try:
            yield Quickstart(clan, infos, json.loads(proc.stdout), clan_ssh(clan.root))
        finally:
            hosts.down(MACHINES)  # see deploy_support.started_hosts


def test_first_update_reaches_every_machine(quickstart: Quickstart) -> None:
    assert sorted((r["machine"], r["changed"], r["error"]) for r in quickstart.first) == sorted(
        (m, True, None) for m in MACHINES
    )


def test_hello_world_users_and_packages(quickstart: Quickstart) -> None:
    ssh_run = quickstart.run
    h = quickstart.hosts
    assert read_files(ssh_run, h["sally-laptop"], ["/etc/hello-world/hello-world"]) == {
        "/etc/hello-world/hello-world": "Good morning World!\n"
    }
    assert read_files(ssh_run, h["fred-laptop"], ["/etc/hello-world/hello-world"]) == {
        "/etc/hello-world/hello-world": "Good night World!\n"
    }
    clan = quickstart.clan.open()
    for machine, user in (("sally-laptop", "sally"), ("fred-laptop", "fred"), ("backup-server", "root")):
        _, expected = get(clan, machine, f"user-password-{user}/user-password-hash")
        facts = ssh_run(h[machine], f"id -nG {user}; getent shadow {user} | cut -d: -f2").stdout.splitlines()
        if user != "root":
            assert "users" in facts[0].split()
        assert facts[1] == expected.decode().strip()
    for machine in MACHINES:
        status = ssh_run(h[machine], "dpkg-query -W -f '${Package} ${Status}\\n' htop tree", check=False).stdout
        assert "htop install ok installed" in status
        assert ("tree install ok installed" in status) == (machine == "backup-server"), (machine, status)


def test_sshd_every_host_reaches_every_other_with_strict_host_keys(quickstart: Quickstart) -> None:
    ssh_run = quickstart.run
    key = hosts.client_key_path().read_text()  # every host accepts pyclan's client key for root
    for source in MACHINES:
        src = quickstart.hosts[source]
        others = [quickstart.hosts[m] for m in MACHINES if m != source]
        script = f"umask 077; cat > /root/.ssh/id_ed25519 <<'EOF'\n{key}EOF\n" + "".join(
            f"ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=10 root@{o.address} hostname\n"
            for o in others
        )
        out = ssh_run(src, script)
        assert out.stdout.split() == [o.name for o in others], (source, out.stderr)


def test_wireguard_mesh_pings_between_all_hosts(quickstart: Quickstart) -> None:
    ssh_run = quickstart.run
    vpn = {}
    for machine in MACHINES:
        out = ssh_run(quickstart.hosts[machine], "ip -4 -o addr show dev wireguard").stdout.split()
        vpn[machine] = out[3].split("/")[0]
    assert len(set(vpn.values())) == len(MACHINES)
    for source in MACHINES:
        targets = " ".join(a for m, a in vpn.items() if m != source)
        out = ssh_run(quickstart.hosts[source], f"""
            for a in {targets}; do
                n=0; until ping -c 1 -W 2 "$a" >/dev/null; do n=$((n + 1)); [ $n -lt 5 ] || break; done
                [ $n -lt 5 ] && echo "ok $a" || echo "FAIL $a"
            done
        """).stdout.split("\n")
        assert [line for line in out if line] == [f"ok {a}" for m, a in vpn.items() if m != source], source


def test_borgbackup_client_backs_up_to_the_server(quickstart: Quickstart) -> None:
    ssh_run = quickstart.run
    client, server = quickstart.hosts["sally-laptop"], quickstart.hosts["backup-server"]
    ssh_run(client, "systemctl start borgbackup-job-backup-server.service", timeout=300)
    passphrase = decrypt_secret(quickstart.clan.open(), "sally-laptop", "borgbackup", "borgbackup.repokey")
    listing = ssh_run(server, (
        f"export BORG_PASSPHRASE='{passphrase.decode().strip()}' BORG_RELOCATED_REPO_ACCESS_IS_OK=yes "
        "BORG_BASE_DIR=/tmp/borg-test; borg list --short /var/lib/borgbackup/sally-laptop"
    )).stdout.split()
    assert len(listing) >= 1 and all(name.startswith("sally-laptop-") for name in listing), listing


def test_second_update_changes_nothing(quickstart: Quickstart) -> None:
    proc = quickstart.clan.cli("machines", "update", "--json")
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert [(r["machine"], r["changed"], r["error"]) for r in reports] == [(m, False, None) for m in sorted(MACHINES)]


def test_removing_a_package_a_user_and_an_instance_then_rollback(quickstart: Quickstart) -> None:
    ssh_run = quickstart.run
    h = quickstart.hosts
    before = quickstart.toml()
    text = before.replace('roles.default.machines.backup-server.settings.packages = ["tree"]\n', "")
    text = re.sub(r"\[instances\.user-fred\]\n(?:[^\[\n][^\n]*\n)*", "", text)
    text = re.sub(r"\[instances\.hello-world\]\n(?:[^\[\n][^\n]*\n)*", "", text)
    assert text.count("[instances.") == before.count("[instances.") - 2
    quickstart.rewrite(text)
    proc = quickstart.clan.cli("machines", "update", "--json", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    changed = {r["machine"]: r["changed"] for r in json.loads(proc.stdout)}
    assert changed == {"sally-laptop": True, "fred-laptop": True, "backup-server": True, "kim-laptop": False}
    assert "no packages found matching tree" in ssh_run(h["backup-server"], "dpkg-query -W tree", check=False).stderr
    assert "htop" in ssh_run(h["backup-server"], "dpkg-query -W htop").stdout
    assert ssh_run(h["fred-laptop"], "id fred", check=False).returncode != 0
    for machine in ("sally-laptop", "fred-laptop"):
        gone = read_files(ssh_run, h[machine], ["/etc/hello-world/hello-world"])
        assert gone == {"/etc/hello-world/hello-world": None}

    # rollback restores the previous generation's files
    back = quickstart.clan.cli("machines", "rollback", "sally-laptop", "--json")
    assert back.returncode == 0, back.stdout + back.stderr
    assert read_files(ssh_run, h["sally-laptop"], ["/etc/hello-world/hello-world"]) == {
        "/etc/hello-world/hello-world": "Good morning World!\n"
    }
    quickstart.rewrite(before)
