"""API of the clan's networks (Clan's `clan network list|ping|overview`)."""

from __future__ import annotations

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.deploy.networks import PROBE_TIMEOUT, MachinePing, NetworkSummary, Overview


@register
def list_networks(flake: str | None = None) -> list[NetworkSummary]:
    """The clan's networks (services exporting `networking`), best priority first, with their members."""
    from pyclan.deploy import networks

    return list(networks.summaries(networks.clan_networks(open_flake(flake))))


@register
def ping_machines(
    machines: list[str] | None = None, network: str | None = None, timeout: float = PROBE_TIMEOUT,
    flake: str | None = None,
) -> list[MachinePing]:  # fmt: skip
    """Probe each machine's SSH port over each of its networks (or only `network`): reachable, latency."""
    from pyclan.deploy import networks

    return list(networks.ping(open_flake(flake), machines or [], network, timeout))


@register
def network_overview(timeout: float = PROBE_TIMEOUT, flake: str | None = None) -> Overview:
    """Machines × networks: whether each machine answers over each network it is in, and why not."""
    from pyclan.deploy import networks

    return networks.overview(open_flake(flake), timeout)
