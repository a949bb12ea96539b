"""The hosts' network: one bridge with the /24, and per host a netns with a veth on it.

Hosts have no route out (no NAT, no ip_forward): they reach each other over the bridge and
the Debian mirror only through the apt proxy on the bridge address.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from pyclan.hosts.config import HostsConfig
from pyclan.hosts.system import deploy_error, kill, run

NETNS_DIR = Path("/run/netns")


def mac_for(address: str) -> str:
    """A fixed, locally administered MAC per IPv4 address: `02:00:` + the address bytes.

    Random MACs would leave stale neighbour entries (up to ~45 s of lost packets) in the
    machine and the other hosts whenever an address is reused or the bridge's ports change.
    """
    return "02:00:" + ":".join(f"{int(o):02x}" for o in address.split("."))


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


OWNER_PREFIX = "pyclan-hosts:"


def bridge_owner(cfg: HostsConfig) -> str | None:
    """The state dir whose hosts use the bridge (kept in the link's alias); None: no bridge.

    "" means a link of that name that pyclan did not create (or an older pyclan did).
    """
    try:
        alias = Path("/sys/class/net", cfg.bridge, "ifalias").read_text().strip()
    except OSError:
        return None
    return alias[len(OWNER_PREFIX) :] if alias.startswith(OWNER_PREFIX) else ""


def owns_bridge(cfg: HostsConfig) -> bool:
    return bridge_owner(cfg) == str(cfg.state_dir)


def may_clean_orphans(cfg: HostsConfig) -> bool:
    """Leftover netns/veths/cgroups named after the bridge are ours only if the bridge is.

    Another state dir using the same bridge name would otherwise lose its hosts.
    """
    return bridge_owner(cfg) in (None, str(cfg.state_dir))


def adopt_legacy_bridge(cfg: HostsConfig, live_veths: set[str]) -> None:
    """Mark as ours a bridge an earlier pyclan made before bridges carried an owner.

    Only if it is unmistakably ours: pyclan's fixed MAC and our address, and no port on it
    but the veths of our own live hosts.
    """
    link = Path("/sys/class/net", cfg.bridge)
    if bridge_owner(cfg) != "" or not (link / "bridge").is_dir():
        return
    if (link / "address").read_text().strip() != mac_for(cfg.bridge_address):
        return
    ports = {p.name for p in (link / "brif").iterdir()}
    used = run(["ip", "-o", "-4", "addr", "show", "dev", cfg.bridge]).stdout
    if ports <= live_veths and f" {cfg.bridge_address}/24 " in used:
        (link / "ifalias").write_text(OWNER_PREFIX + str(cfg.state_dir))


def ensure_bridge(cfg: HostsConfig) -> None:
    """Create the bridge with `<net>.1/24`, marked as ours, unless we have it already."""
    owner = bridge_owner(cfg)
    if owner is None:
        used = run(["ip", "-o", "-4", "addr", "show", "to", f"{cfg.bridge_address}/32"]).stdout.split()
        if used:
            raise deploy_error(
                "hosts",
                f"address {cfg.bridge_address} is already used by link {used[1]}",
                hint="set PYCLAN_HOSTS_NET (and PYCLAN_HOSTS_BRIDGE) to a /24 of your own",
            )
        run(
            ["ip", "-batch", "-"],
            input=(
                f"link add {cfg.bridge} address {mac_for(cfg.bridge_address)} type bridge\n"
                f"addr add {cfg.bridge_address}/24 dev {cfg.bridge}\n"
                f"link set {cfg.bridge} up\n"
            ),
        )
        Path("/sys/class/net", cfg.bridge, "ifalias").write_text(OWNER_PREFIX + str(cfg.state_dir))
    elif owner != str(cfg.state_dir):
        by = f"the local hosts in {owner}" if owner else "something else"
        raise deploy_error(
            "hosts",
            f"link {cfg.bridge} is used by {by}",
            hint="set PYCLAN_HOSTS_BRIDGE and PYCLAN_HOSTS_NET to a bridge and /24 of your own",
        )


def remove_bridge(cfg: HostsConfig) -> None:
    if owns_bridge(cfg):
        run(["ip", "link", "del", cfg.bridge], check=False)


def add_host_net(cfg: HostsConfig, netns: str, veth: str, address: str) -> None:
    """Netns with `eth0` = address/24 and a default route via the bridge; root end on the bridge."""
    run(
        ["ip", "-batch", "-"],
        input=(
            f"netns add {netns}\n"
            f"link add {veth} type veth peer name eth0 address {mac_for(address)} netns {netns}\n"
            f"link set {veth} master {cfg.bridge} up\n"
        ),
    )
    run(
        ["ip", "-n", netns, "-batch", "-"],
        input=(
            "link set lo up\n"
            f"addr add {address}/24 dev eth0\n"
            "link set eth0 up\n"
            f"route add default via {cfg.bridge_address}\n"
        ),
    )


def netns_pids(netns: str) -> list[int]:
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()] if proc.returncode == 0 else []


def remove_host_net(netns: str, veth: str) -> None:
    """Kill what still runs in the netns, then delete it and the veth pair."""
    if netns and (NETNS_DIR / netns).exists():
        for pid in netns_pids(netns):
            kill(pid)
        run(["ip", "netns", "del", netns], check=False)
    if veth and link_exists(veth):
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
            p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(pre) and p.name[len(pre) :].isdigit()
        )
    return []
