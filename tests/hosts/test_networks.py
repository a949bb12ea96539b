"""Reaching machines over the clan's networks, on real local hosts.

Setup of the WireGuard test: `nw-gw` is the wireguard controller (its `internet` address is its
local host's address), `nw-far` a peer whose `internet` address (192.0.2.29, TEST-NET-1) is not
routed anywhere, and `nw-admin` a third peer that is never deployed: it is this test process's
own machine. The test brings up `nw-admin`'s interface on the controller machine with
wireguard-go and `wg setconf` (its key from the clan's vars, the controller `nw-gw` as its only
peer, as wg-quick would from pyclan's rendered config). So pyclan reaches `nw-far` over a real
WireGuard tunnel: controller → nw-gw → nw-far, as an admin laptop inside a Clan VPN does.
The interface and its address range (10.229.N.0/24) are this test's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import (
    DeployClan,
    LocalHosts,
    SshRun,
    make_deploy_clan,
    read_files,
    started_hosts_fixture,  # noqa: F401 - provides the `started_hosts` fixture
)

from pyclan.clan import open_clan
from pyclan.deploy import networks
from pyclan.hosts.system import port_open
from pyclan.vars.api import decrypt_secret, get

pytestmark = pytest.mark.hosts

UNROUTED = "192.0.2.29"  # TEST-NET-1 (RFC 5737): no route leads there


def _net_number() -> str:
    return os.environ.get("PYCLAN_HOSTS_NET", "10.231.29").split(".")[-1]


def _wg_range() -> str:
    return f"10.229.{_net_number()}.0/24"


def _ifname() -> str:
    return f"pcwg{_net_number()}"


def _inventory(gw: str, version: int, far_vpn: str = "") -> str:
    """Local hosts' sshd listens on the bridge address only: nw-far also gets its VPN address
    (a drop-in, and a restart once the VPN is up), as a real host's sshd listens everywhere."""
    listen = f"ListenAddress {far_vpn}\\n" if far_vpn else ""
    restart = "systemctl daemon-reload; systemctl start wg-quick@vpn.service || true; systemctl restart ssh.service"
    restart = restart if far_vpn else "true"
    return f"""
[meta]
name = "networks-test"

[machines.nw-gw]
[machines.nw-far]
[machines.nw-admin]

[instances.internet]
module.name = "internet"
roles.default.machines.nw-gw.settings.host = "{gw}"
roles.default.machines.nw-far.settings.host = "{UNROUTED}"

[instances.vpn]
module.name = "wireguard"
roles.controller.machines.nw-gw.settings.ipv4Range = "{_wg_range()}"
roles.peer.machines.nw-far = {{}}
roles.peer.machines.nw-admin = {{}}

[instances.deploytest]
module.name = "deploytest"
module.input = "self"
roles.default.machines.nw-gw.settings.files = {{ "/etc/nw" = "gw v{version}\\n" }}
roles.default.machines.nw-far.settings.files.'/etc/nw' = "far v{version}\\n"
roles.default.machines.nw-far.settings.files.'/etc/ssh/sshd_config.d/50-vpn.conf' = "{listen}"
roles.default.machines.nw-far.settings.hooks = {{ "sshd-vpn" = "{restart}" }}
"""


class AdminPeer:
    """The controller machine as the wireguard peer `nw-admin` (wireguard-go, removed at the end)."""

    def __init__(self, clan_root: Path, gw_address: str) -> None:
        self.name = _ifname()
        clan = open_clan(clan_root, {})
        vpn = next(n for n in networks.clan_networks(clan) if n.name == "vpn")
        self.address = vpn.peers["nw-admin"].hosts[0]
        private = decrypt_secret(clan, "nw-admin", "wireguard-keys-vpn", "privatekey").decode().strip()
        _, gw_public = get(clan, "nw-gw", "wireguard-keys-vpn/publickey")
        self.conf = clan_root.parent / "admin-wg.conf"
        self.conf.touch(mode=0o600)
        self.conf.write_text(
            f"[Interface]\nPrivateKey = {private}\n\n[Peer]\nPublicKey = {gw_public.decode().strip()}\n"
            f"Endpoint = {gw_address}:51820\nAllowedIPs = {_wg_range()}\nPersistentKeepalive = 5\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def up(self) -> None:
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1")
        self.proc = subprocess.Popen(["wireguard-go", "-f", self.name], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sock = Path(f"/run/wireguard/{self.name}.sock")
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        prefix = _wg_range().split("/")[1]
        for cmd in (["wg", "setconf", self.name, str(self.conf)],
                    ["ip", "addr", "add", f"{self.address}/{prefix}", "dev", self.name],
                    ["ip", "link", "set", self.name, "up"]):
            subprocess.run(cmd, check=True, capture_output=True)

    def down(self) -> None:
        subprocess.run(["ip", "link", "del", self.name], check=False, capture_output=True)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def admin_peers() -> Iterator[list[AdminPeer]]:
    made: list[AdminPeer] = []
    yield made
    for peer in made:
        peer.down()


def _wait_reachable(address: str, seconds: float = 30) -> None:
    """WireGuard's first handshake takes a moment after the interfaces come up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if networks.probe(networks.Route("nw-far", "vpn", 1000, address), timeout=1).reachable:
            return
        time.sleep(0.5)
    raise AssertionError(f"{address} did not answer over WireGuard within {seconds:.0f} s")


def test_machine_reachable_only_over_wireguard_is_updated_over_it(
    started_hosts: LocalHosts, ssh_run: SshRun, admin_peers: list[AdminPeer], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    infos = {h.name: h for h in started_hosts(["nw-gw", "nw-far"])}
    gw, far = infos["nw-gw"], infos["nw-far"]
    clan: DeployClan = make_deploy_clan(tmp_path / "clan")
    (clan.root / "clan.toml").write_text(_inventory(gw.address, 1))
    far_vpn = networks.find_network(networks.clan_networks(clan.open()), "vpn").peers["nw-far"].hosts[0]
    (clan.root / "clan.toml").write_text(_inventory(gw.address, 1, far_vpn))
    clan.cli("vars", "generate", check=True, timeout=300)

    # first deployment: nw-far is not in the VPN yet, and its internet address leads nowhere —
    # only its local host (the machine's bootstrap address) answers
    first = json.loads(clan.cli("machines", "update", "nw-gw", "nw-far", "--json", check=True, timeout=600).stdout)
    assert {r["machine"]: (r["changed"], r["target"]) for r in first} == {
        "nw-gw": (True, f"root@{gw.address}"), "nw-far": (True, f"root@{far.address}"),
    }

    admin = AdminPeer(clan.root, gw.address)
    admin_peers.append(admin)
    admin.up()
    try:
        _wait_reachable(far_vpn)
    except AssertionError as exc:  # say what the tunnel looks like on each side
        local = subprocess.run(["wg", "show", admin.name], capture_output=True, text=True, check=False).stdout
        probe = networks.probe(networks.Route("nw-far", "vpn", 1000, far_vpn), timeout=1)
        show = "cat /proc/sys/net/ipv4/ip_forward; wg show; ss -ltn"
        remote = {h.name: ssh_run(h, show, check=False).stdout for h in (gw, far)}
        local += str(probe)
        raise AssertionError(f"{exc}\ncontroller:\n{local}\n{remote}") from None

    (clan.root / "clan.toml").write_text(_inventory(gw.address, 2, far_vpn))
    second = json.loads(clan.cli("machines", "update", "nw-far", "--json", check=True, timeout=600).stdout)
    assert [(r["machine"], r["changed"], r["target"]) for r in second] == [("nw-far", True, f"root@{far_vpn}")]
    assert read_files(ssh_run, far, ["/etc/nw"]) == {"/etc/nw": "far v2\n"}

    # why: the overview shows the internet address unreachable and the VPN reachable
    overview = json.loads(clan.cli("network", "overview", "--json", check=True).stdout)
    cells = overview["machines"]["nw-far"]
    assert cells["internet"]["reachable"] is False and cells["internet"]["address"] == f"{UNROUTED}:22"
    assert cells["internet"]["error"]
    assert cells["vpn"]["reachable"] is True and cells["vpn"]["address"] == f"{far_vpn}:22"
    assert overview["machines"]["nw-gw"]["internet"]["reachable"] is True
    assert [(n["name"], n["priority"]) for n in overview["networks"]] == [("internet", 2000), ("vpn", 1000)]

    # `pyclan ssh` takes the same way; --target-host on a local host keeps its key and host key
    proc = clan.cli("ssh", "nw-far", "-c", "cat", "/etc/nw")
    assert (proc.returncode, proc.stdout) == (0, "far v2\n"), proc.stderr
    proc = clan.cli("ssh", "nw-far", "--target-host", f"root@{far_vpn}", "-c", "hostname")
    assert (proc.returncode, proc.stdout.strip()) == (0, "nw-far"), proc.stderr
    # --network forces the unreachable one, and says what it tried
    proc = clan.cli("machines", "update", "nw-far", "--network", "internet")
    assert proc.returncode == 1
    assert f"not reachable over network 'internet': tried internet ({UNROUTED}:22)" in proc.stdout + proc.stderr


def test_local_host_that_does_not_answer_on_port_22_is_reported_as_such(
    started_hosts: LocalHosts, ssh_run: SshRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    (mute,) = started_hosts(["nw-mute"])
    clan: DeployClan = make_deploy_clan(tmp_path / "clan")
    clan.set({"nw-mute": {"files": {"/etc/mute": "1\n"}}})
    # --target-host at the local host's address: pyclan's client key and the host's key still apply
    proc = clan.cli("machines", "update", "nw-mute", "--target-host", f"root@{mute.address}", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["target"] == f"root@{mute.address}"

    ssh_run(mute, "systemctl stop ssh.socket ssh.service 2>/dev/null; systemctl stop ssh.service", check=False)
    assert not port_open(mute.address, 22)
    proc = clan.cli("machines", "update", "nw-mute")
    assert proc.returncode == 1
    output = proc.stdout + proc.stderr  # the summary names each host's error
    assert f"the local host of machine 'nw-mute' runs ({mute.address}), but does not answer on port 22" in output
    assert "hosts up" not in output
