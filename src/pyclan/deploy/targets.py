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

from pyclan.deploy.transport import Target, parse_target, target_problem
from pyclan.errors import ClanError
from pyclan.inventory.target_host import SYNTAX_HINT, destination_problem, jump_hosts_problem, word_problem

if TYPE_CHECKING:
    from pyclan.clan import Clan


def local_target(machine: str) -> Target | None:
    """The running local host of `machine`, if any (its state file is checked like an inventory)."""
    from pyclan.deploy import hosts
    from pyclan.deploy.hosts_config import HostsConfig

    info = hosts.host_for(machine)
    if info is None:
        return None
    target = Target(
        machine=machine, host=info.address, user=info.user, source="local host (pyclan hosts)",
        identity=hosts.client_key_path(), known_hosts=hosts.known_hosts_path(), ssh_config=False,
    )
    problem = target_problem(target)
    if problem is not None:
        raise ClanError.single(
            "deploy-error", f"machines.{machine}", f"the local host's state is unsafe for ssh: {problem}",
            file=str(HostsConfig.from_env().state_file(machine)),
            hint=f"the state file was edited by hand: `pyclan hosts down {machine}` and `pyclan hosts up {machine}`",
        )
    return target


def _settings_origin(clan: Clan, instance: str, machine: str, key: str) -> str:
    """The inventory path of the settings `key` in effect for `machine` (machine block first)."""
    roles = clan.resolved.instances[instance].roles
    base = f"instances.{instance}.roles.default"
    role = roles.get("default")
    if role is not None:
        for block in reversed(role.defs.get(machine, [])):
            if isinstance(block.value, dict) and key in block.value:
                return f"{block.source}.{key}"
    return f"{base}.machines.{machine}.settings.{key}"


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _internet_target(clan: Clan, machine: str) -> Target | None:
    """The best address the `internet` service exports for `machine` (with user, port, jumps).

    The settings are user input that ends on an ssh command line: a host, user or jump host that
    ssh would read as an option is refused here, naming the settings it came from.
    """
    if not any(i.service.name == "internet" for i in clan.resolved.instances.values()):
        return None
    from pyclan.services.library import internet

    found = internet.machine_target(clan.evaluator.exports(), machine)
    if found is None:
        return None
    source = f"the internet service (instance '{found.instance}')"

    def refuse(key: str, problem: str) -> ClanError:
        return ClanError.single(
            "settings-type", _settings_origin(clan, found.instance, machine, key),
            f"unsafe {key} for ssh: {problem}", hint=SYNTAX_HINT,
        )

    host = f"[{found.host}]" if _is_ipv6(found.host) else found.host
    problem = destination_problem(found.host)
    if problem is not None:
        raise refuse("host", problem)
    base = parse_target(host, machine, source, path=_settings_origin(clan, found.instance, machine, "host"))
    if found.user is not None and (problem := word_problem(found.user, "user")) is not None:
        raise refuse("user", problem)
    for jump in found.jumphosts:
        if (problem := jump_hosts_problem(jump)) is not None:
            raise refuse("jumphosts", problem)
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
        return parse_target(override, machine, "--target-host", path="--target-host")
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
