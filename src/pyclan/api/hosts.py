"""API of local test hosts: start, stop and list Debian hosts booted with systemd-nspawn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.errors import ClanError

if TYPE_CHECKING:
    from pyclan.hosts.state import HostInfo


@dataclass(frozen=True)
class LocalHost:
    """A local host: its address, whether it runs, its supervisor's pid and its SSH host key."""

    name: str
    index: int
    address: str
    host_key: str
    running: bool
    user: str
    target_host: str
    pid: int | None = None


@dataclass(frozen=True)
class StoppedHosts:
    """The hosts that `hosts down` stopped and removed."""

    stopped: list[str]


def _local(i: HostInfo) -> LocalHost:
    return LocalHost(i.name, i.index, i.address, i.host_key, i.running, i.user, i.target_host, i.pid)


def _machine_names(flake: str | None) -> list[str]:
    return sorted(open_flake(flake).loaded.inventory.machines)


def selected_machines(machines: list[str] | None, all_machines: bool, flake: str | None) -> list[str]:
    """The named machines plus, with `all_machines`, every machine of the inventory (`up` and `down` alike)."""
    names = list(dict.fromkeys(machines or []))
    if all_machines:
        names += [n for n in _machine_names(flake) if n not in names]
    return names


def _network_addresses(names: list[str], flake: str | None) -> dict[str, str]:
    """Each machine's best address over the clan's networks (`peer` exports), if a clan is at
    hand: hosts take it when they can."""
    from pyclan.deploy.networks import clan_networks, wished_local_address

    try:
        nets = clan_networks(open_flake(flake))
    except ClanError:
        return {}
    found = {n: wished_local_address(nets, n) for n in names}
    return {n: h for n, h in found.items() if h}


@register
def hosts_up(
    machines: list[str] | None = None,
    all_machines: bool = False,
    flake: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[LocalHost]:
    """Start a local host for each machine (or every inventory machine); running ones are kept."""
    from pyclan.hosts import control as lib

    names = selected_machines(machines, all_machines, flake)
    if not names:
        raise ClanError.single("usage-error", "hosts up", "name machines to start, or use --all")
    cfg = lib.HostsConfig.from_env()
    if progress is not None and not lib.rootfs_ready(cfg.rootfs):
        progress(f"building the Debian rootfs once at {cfg.rootfs} (about 40 s)…")
    return [_local(i) for i in lib.up(names, config=cfg, addresses=_network_addresses(names, flake))]


@register
def hosts_down(machines: list[str] | None = None, all_machines: bool = False, flake: str | None = None) -> StoppedHosts:
    """Stop the hosts of the named machines (or, with `all_machines`, of every inventory machine, as
    `hosts_up`) and remove every trace of them; neither: every host. The apt proxy and the bridge go
    with the last host."""
    from pyclan.hosts import control as lib

    if not machines and not all_machines:
        return StoppedHosts(list(lib.down(None)))
    return StoppedHosts(list(lib.down(selected_machines(machines, all_machines, flake))))


@register
def hosts_status() -> list[LocalHost]:
    """The local hosts with their address, state and host key."""
    from pyclan.hosts import control as lib

    return [_local(i) for i in lib.status()]
