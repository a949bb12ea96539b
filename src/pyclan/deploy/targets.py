"""Which address a machine is deployed to, in Clan's order of precedence.

1. `--target-host` (one machine only);
2. the machine's running local host (`pyclan hosts up`): its address, pyclan's own client
   key and known_hosts — the user's ssh config is not consulted for these;
3. the inventory's `machines.<m>.deploy.targetHost`;
4. the address the `internet` service exports for the machine (with its user, port, jump hosts).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pyclan.deploy.transport import Target, parse_target
from pyclan.errors import ClanError

if TYPE_CHECKING:
    from pyclan.clan import Clan


def local_target(machine: str) -> Target | None:
    """The running local host of `machine`, if any."""
    from pyclan.deploy import hosts

    info = hosts.host_for(machine)
    if info is None:
        return None
    return Target(
        machine=machine, host=info.address, user=info.user, source="local host (pyclan hosts)",
        identity=hosts.client_key_path(), known_hosts=hosts.known_hosts_path(), ssh_config=False,
    )


def _internet_target(clan: Clan, machine: str) -> Target | None:
    """The best address the `internet` service exports for `machine` (with user, port, jumps)."""
    if not any(i.service.name == "internet" for i in clan.resolved.instances.values()):
        return None
    from pyclan.services.library import internet

    found = internet.machine_target(clan.evaluator.exports(), machine)
    if found is None:
        return None
    base = parse_target(found.host, machine, f"the internet service (instance '{found.instance}')")
    return replace(
        base, user=found.user or "root", port=found.port if found.port != 22 else None,
        jump=",".join(found.jumphosts) or None,
    )


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


def resolve_target(clan: Clan, machine: str, override: str | None = None, *, local: bool = True) -> Target:
    """The target of `machine`; a ClanError with a hint if none is known."""
    target = _find_target(clan, machine, override, local)
    if not override:
        _refuse_absent_local_host(target)
    return replace(target, host_keys=clan_host_keys(clan, machine))


def _refuse_absent_local_host(target: Target) -> None:
    """An inventory address inside the local hosts' network needs the hosts' bridge.

    Without it (no local host up), the connection would leave this machine through its default
    route towards a private address that is not ours; say what to do instead. With the bridge
    up, a stopped host is simply unreachable on it.
    """
    if target.identity is not None:  # the running local host itself
        return
    from pyclan.deploy.hosts_config import HostsConfig

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


def _find_target(clan: Clan, machine: str, override: str | None, local: bool) -> Target:
    if override:
        return parse_target(override, machine, "--target-host")
    if local:
        found = local_target(machine)
        if found is not None:
            return found
    spec = clan.loaded.inventory.machines[machine].deploy.targetHost
    if spec:
        return parse_target(spec, machine, f"machines.{machine}.deploy.targetHost")
    internet = _internet_target(clan, machine)
    if internet is not None:
        return internet
    raise ClanError.single(
        "deploy-error", f"machines.{machine}.deploy.targetHost", f"no target host is known for machine '{machine}'",
        hint=f"start it as a local host (`pyclan hosts up {machine}`), set machines.{machine}.deploy.targetHost "
        "in clan.toml, or pass --target-host",
    )
