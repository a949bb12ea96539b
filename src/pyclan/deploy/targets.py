"""Which address a machine is deployed to, in Clan's order of precedence.

1. `--target-host` (one machine only);
2. `--network NAME`: the first answering host of the machine's peer in that network;
3. the inventory's `machines.<m>.deploy.targetHost` (used as is, as Clan does);
4. the machine's networks (services exporting `networking` and `peer`, see `deploy.networks`),
   probed in parallel: the best priority that answers wins;
5. the machine's running local host (`pyclan hosts up`).

While a machine runs as a local host, pyclan logs in with its own client key and trusts that
host's key at the machine's addresses (its local address and its networks' hosts, also given as
`--target-host`); the user's ssh config is not consulted for them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pyclan.deploy import networks
from pyclan.deploy.transport import Target, parse_target
from pyclan.errors import ClanError

if TYPE_CHECKING:
    from pyclan.clan import Clan
    from pyclan.hosts.state import HostInfo


#: generators holding a machine's SSH host keys (Clan's names, used by the bundled `sshd` service)
HOST_KEY_GENERATORS = ("openssh", "openssh-rsa")


def clan_host_keys(clan: Clan, machine: str) -> tuple[str, ...]:
    """The host keys the clan generated for `machine` (public vars), once they exist.

    After `sshd` is deployed the machine presents these instead of the key it was installed
    with; they come from the clan itself, so they are trusted like known_hosts entries.
    """
    declared = clan.evaluator.generators().get(machine, {})
    reader = clan.evaluator.reader(machine)
    keys: list[str] = []
    for name in HOST_KEY_GENERATORS:
        if name not in declared:
            continue
        for file, spec in sorted(declared[name].generator.files.items()):
            if not spec.secret and file.endswith(".pub") and reader.has(name, file):
                value = reader.public(name, file).strip()
                if value:
                    keys.append(" ".join(value.split()[:2]))
    return tuple(keys)


def resolve_target(
    clan: Clan, machine: str, override: str | None = None, *, local: bool = True, network: str | None = None,
    nets: list[networks.Network] | None = None,
) -> Target:
    """The target of `machine`; a ClanError with a hint if none is known or none answers.

    A running local host is probed (TCP, port 22) only when it competes with network routes;
    otherwise it is connected to directly, and the connect timeout bounds a silent one.
    """
    probe = False
    if local and not override and not network and not clan.loaded.inventory.machines[machine].deploy.targetHost:
        nets = nets if nets is not None else networks.clan_networks(clan)
        probe = bool(networks.machine_routes(nets, machine))
    running = networks.running_local_host(machine, probe=probe) if local else None
    target = _find_target(clan, machine, override, running, network, nets)
    if not override and not network:
        _refuse_absent_local_host(target)
    target = replace(target, host_keys=clan_host_keys(clan, machine))
    if running is None:
        return target
    known = networks.local_addresses(nets if nets is not None else networks.clan_networks(clan), machine, running[0])
    return networks.with_local_credentials(target, running[0], known)


def resolve_targets(
    clan: Clan, machines: list[str], override: str | None = None, *, network: str | None = None
) -> dict[str, Target | ClanError]:
    """Each machine's target (or why it has none), resolved in parallel: probes overlap."""
    from concurrent.futures import ThreadPoolExecutor

    nets = networks.clan_networks(clan)  # evaluated once, before the threads
    clan.evaluator.generators()

    def one(m: str) -> Target | ClanError:
        try:
            return resolve_target(clan, m, override, network=network, nets=nets)
        except ClanError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(32, len(machines)))) as pool:
        return dict(zip(machines, pool.map(one, machines), strict=True))


def _refuse_absent_local_host(target: Target) -> None:
    """An inventory address inside the local hosts' network needs the hosts' bridge.

    Without it (no local host up), the connection would leave this machine through its default
    route towards a private address that is not ours; say what to do instead. With the bridge
    up, a stopped host is simply unreachable on it.
    """
    if target.identity is not None:  # the running local host itself
        return
    from pyclan.hosts.config import HostsConfig

    cfg = HostsConfig.from_env()
    net = cfg.net
    if Path("/sys/class/net", cfg.bridge).exists():
        return
    try:
        address = ipaddress.ip_address(target.host)
    except ValueError:
        return
    if address in ipaddress.ip_network(f"{net}.0/24"):
        raise ClanError.single(
            "deploy-error", f"machines.{target.machine}",
            f"{target.host} ({target.source}) is an address of pyclan's local hosts, but no local host "
            f"runs for machine '{target.machine}'",
            hint=f"start it with `pyclan hosts up {target.machine}`, or pass --target-host",
        )


def _find_target(
    clan: Clan, machine: str, override: str | None, running: tuple[HostInfo, bool | None] | None,
    network: str | None,
    nets: list[networks.Network] | None,
) -> Target:
    if override:
        return parse_target(override, machine, "--target-host", path="--target-host")
    if network:
        return networks.route_over(nets if nets is not None else networks.clan_networks(clan), machine, network)
    spec = clan.loaded.inventory.machines[machine].deploy.targetHost
    if spec:
        return parse_target(spec, machine, f"machines.{machine}.deploy.targetHost")
    found = networks.best_route(nets if nets is not None else networks.clan_networks(clan), machine, running)
    if found is not None:
        return found
    raise ClanError.single(
        "deploy-error", f"machines.{machine}.deploy.targetHost", f"no target host is known for machine '{machine}'",
        hint=f"start it as a local host (`pyclan hosts up {machine}`), set machines.{machine}.deploy.targetHost "
        "in clan.toml, add it to a network (e.g. an `internet` instance), or pass --target-host",
    )
