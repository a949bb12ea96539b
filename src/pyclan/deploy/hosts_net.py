"""The hosts' network: one bridge with the /24, and per host a netns with a veth on it.

Hosts have no route out (no NAT, no ip_forward): they reach each other over the bridge and
the Debian mirror only through the apt proxy on the bridge address.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from pyclan.deploy.hosts_config import HostsConfig
from pyclan.deploy.hosts_system import deploy_error, kill, run

NETNS_DIR = Path("/run/netns")


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def ensure_bridge(cfg: HostsConfig) -> None:
    """Create the bridge with `<net>.1/24` unless it is there already."""
    cidr = f"{cfg.bridge_address}/24"
    if not link_exists(cfg.bridge):
        run(["ip", "-batch", "-"], input=(
            f"link add {cfg.bridge} type bridge\n"
            f"addr add {cidr} dev {cfg.bridge}\n"
            f"link set {cfg.bridge} up\n"
        ))
        return
    addrs = json.loads(run(["ip", "-j", "addr", "show", "dev", cfg.bridge]).stdout or "[]")
    have = {f"{a['local']}/{a['prefixlen']}" for link in addrs for a in link.get("addr_info", [])}
    if cidr not in have:
        raise deploy_error(
            "hosts",
            f"link {cfg.bridge} exists but does not have address {cidr}",
            hint="choose another PYCLAN_HOSTS_BRIDGE / PYCLAN_HOSTS_NET, or remove the link",
        )


def remove_bridge(cfg: HostsConfig) -> None:
    if link_exists(cfg.bridge):
        run(["ip", "link", "del", cfg.bridge], check=False)


def add_host_net(cfg: HostsConfig, netns: str, veth: str, address: str) -> None:
    """Netns with `eth0` = address/24 and a default route via the bridge; root end on the bridge."""
    run(["ip", "-batch", "-"], input=(
        f"netns add {netns}\n"
        f"link add {veth} type veth peer name eth0 netns {netns}\n"
        f"link set {veth} master {cfg.bridge} up\n"
    ))
    run(["ip", "-n", netns, "-batch", "-"], input=(
        "link set lo up\n"
        f"addr add {address}/24 dev eth0\n"
        "link set eth0 up\n"
        f"route add default via {cfg.bridge_address}\n"
    ))


def netns_pids(netns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()] if proc.returncode == 0 else []


def remove_host_net(netns: str, veth: str) -> None:
    """Kill what still runs in the netns, then delete it and the veth pair."""
    if (NETNS_DIR / netns).exists():
        for pid in netns_pids(netns):
            kill(pid)
        run(["ip", "netns", "del", netns], check=False)
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)


def our_netns(cfg: HostsConfig) -> list[str]:
    """Netns names this configuration could have created (for leftovers of a crash)."""
    with contextlib.suppress(OSError):
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(cfg.netns_prefix))
    return []


def our_veths(cfg: HostsConfig) -> list[str]:
    """Links named `<bridge>-<n>`: veths this configuration could have created."""
    pre = cfg.veth_prefix
    with contextlib.suppress(OSError):
        return sorted(
            p.name for p in Path("/sys/class/net").iterdir()
            if p.name.startswith(pre) and p.name[len(pre):].isdigit()
        )
    return []
