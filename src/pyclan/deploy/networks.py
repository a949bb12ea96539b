"""The clan's networks (Clan's model): how deploy finds a way to each machine.

A network is a service instance that exports `networking` (a priority; Clan: internet 2000,
wireguard 1000, zerotier 900, tor 10) at its instance scope `S:i::`, and a `peer` (hosts, port,
user, SSH options) for each member at `S:i:r:m`. Any service may do so; this module never names
one. A machine's *routes* are its peers' hosts over every network it is in, best priority first.
Routes are probed in parallel with a TCP connect to the SSH port that waits for the server's
`SSH-` greeting; the first route in priority order that answers wins.
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pyclan.deploy.transport import Target
from pyclan.errors import ClanError
from pyclan.services.exports import ExportValue, parse_scope

if TYPE_CHECKING:
    from pyclan.clan import Clan
    from pyclan.hosts.state import HostInfo

#: seconds a reachability probe waits for the SSH port to accept
PROBE_TIMEOUT = 2.0
SSH_PORT = 22
DEFAULT_PRIORITY = 1000  # the `networking` interface's default (clan-semantics R11.4)
DIRECT_MODULE = "clan_lib.network.direct"
#: network modules that need a proxy pyclan does not run; their networks are listed, not probed
PROXY_MODULES = {"clan_lib.network.tor": "a Tor SOCKS proxy"}
LOCAL_HOST = "local host"  # the `network` of a route to a running `pyclan hosts` host

ReadVar = Callable[[str, str, str], str | None]  # (machine, generator, file) → public value or None


@dataclass(frozen=True)
class Peer:
    """One machine's entry in a network: where it answers and how to log in."""

    machine: str
    hosts: tuple[str, ...]
    port: int = SSH_PORT
    user: str | None = None
    ssh_options: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()  # host references that could not be read (e.g. a var not generated yet)


@dataclass(frozen=True)
class Network:
    """A service instance that exports `networking`, with its members' peers."""

    name: str  # the instance name (unique in the inventory)
    service: str
    priority: int
    module: str
    peers: dict[str, Peer] = field(default_factory=dict)

    @property
    def unsupported(self) -> str | None:
        """Why pyclan cannot probe this network, or None."""
        need = PROXY_MODULES.get(self.module)
        return f"module {self.module} needs {need}, which pyclan does not run" if need else None


@dataclass(frozen=True)
class Route:
    """One way to reach a machine: a host of one of its networks (or its local host)."""

    machine: str
    network: str
    priority: int
    host: str
    port: int = SSH_PORT
    user: str | None = None
    jumphosts: tuple[str, ...] = ()
    problem: str | None = None  # set: this route cannot be used, and why
    source: str = ""

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def target(self) -> Target:
        """The SSH target of this route; parts that ssh would read as options are refused (a
        service's export is user input: it ends on an ssh command line)."""
        from pyclan.inventory.target_host import SYNTAX_HINT, destination_problem, jump_hosts_problem, word_problem

        problem = destination_problem(self.host) if "@" in self.host else word_problem(self.host, "host")
        if problem is None and self.user is not None:
            problem = word_problem(self.user, "user")
        if problem is None and self.jumphosts:
            problem = jump_hosts_problem(",".join(self.jumphosts))
        if problem is not None:
            raise ClanError.single(
                "settings-type", f"instances.{self.network}",
                f"unsafe address of machine '{self.machine}' for ssh ({self.source or self.network}): {problem}",
                hint=SYNTAX_HINT,
            )  # fmt: skip
        return Target(
            machine=self.machine, host=self.host, user=self.user or "root",
            port=self.port if self.port != SSH_PORT else None, source=self.source,
            jump=",".join(self.jumphosts) or None,
        )


@dataclass(frozen=True)
class Reachability:
    """The probe of one route: did the SSH port accept a TCP connection, and how fast."""

    machine: str
    network: str
    priority: int
    address: str
    reachable: bool
    latency_ms: float | None = None
    error: str | None = None
    via: str | None = None  # the jump host that was probed instead of the address

    def describe(self) -> str:
        where = f"{self.network} ({self.address}" + (f" via {self.via}" if self.via else "") + ")"
        if self.reachable:
            return f"{where}: reachable in {self.latency_ms:.1f} ms"
        return f"{where}: {self.error}"


# -- reading the exports ---------------------------------------------------------------------------


def _read_hosts(entries: Any, read_var: ReadVar) -> tuple[list[str], list[str]]:
    hosts: list[str] = []
    missing: list[str] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        plain = entry.get("plain")
        var = entry.get("var")
        if isinstance(plain, str):
            if plain:
                hosts.append(plain)
        elif isinstance(var, Mapping):
            ref = (str(var.get("machine", "")), str(var.get("generator", "")), str(var.get("file", "")))
            value = read_var(*ref)
            if value:
                hosts.append(value.strip())
            else:
                missing.append(
                    f"var {ref[1]}/{ref[2]} of {ref[0]} is not generated yet (`pyclan vars generate {ref[0]}`)"
                )
    return hosts, missing


def networks_from_exports(exports: Mapping[str, ExportValue], read_var: ReadVar) -> list[Network]:
    """Every network in `exports`, best priority first (then by name)."""
    found: dict[tuple[str, str], Network] = {}
    for key, value in exports.items():
        scope = parse_scope(key)
        networking = value.get("networking")
        if not isinstance(networking, Mapping) or not scope.instance or scope.machine:
            continue
        priority = networking.get("priority", DEFAULT_PRIORITY)
        module = networking.get("module", DIRECT_MODULE)
        found[(scope.service, scope.instance)] = Network(
            name=scope.instance, service=scope.service,
            priority=priority if isinstance(priority, int) else DEFAULT_PRIORITY,
            module=module if isinstance(module, str) else DIRECT_MODULE,
        )
    for key, value in exports.items():
        scope = parse_scope(key)
        peer = value.get("peer")
        net = found.get((scope.service, scope.instance))
        if net is None or not scope.machine or not isinstance(peer, Mapping):
            continue
        hosts, missing = _read_hosts(peer.get("hosts"), read_var)
        port, user, options = peer.get("port", SSH_PORT), peer.get("user"), peer.get("SSHOptions", [])
        old = net.peers.get(scope.machine)  # one machine in several roles: its hosts add up
        net.peers[scope.machine] = Peer(
            machine=scope.machine,
            hosts=tuple(dict.fromkeys([*(old.hosts if old else ()), *hosts])),
            port=port if isinstance(port, int) else SSH_PORT,
            user=user if isinstance(user, str) else None,
            ssh_options=tuple(o for o in options if isinstance(o, str)) if isinstance(options, list) else (),
            missing=(*(old.missing if old else ()), *missing),
        )
    return sorted(found.values(), key=lambda n: (-n.priority, n.name))


def clan_networks(clan: Clan) -> list[Network]:
    """The clan's networks, best priority first."""

    def read_var(machine: str, generator: str, file: str) -> str | None:
        if machine not in clan.evaluator.generators():
            return None
        reader = clan.evaluator.reader(machine)
        try:
            return reader.public(generator, file) if reader.has(generator, file) else None
        except ClanError:
            return None

    return networks_from_exports(clan.evaluator.exports(), read_var)


def find_network(networks: Sequence[Network], name: str) -> Network:
    """The network called `name`, or a ClanError listing the ones there are."""
    for net in networks:
        if net.name == name:
            return net
    from difflib import get_close_matches

    names = [n.name for n in networks]
    close = get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise ClanError.single(
        "usage-error", "--network", f"the clan has no network named '{name}'",
        hint=hint + f"networks: {', '.join(names) or '(none: no service exports `networking`)'}",
    )


# -- routes ----------------------------------------------------------------------------------------


def _jumphosts(options: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """`-J host` (also `-Jhost`, `-o ProxyJump=host`) from SSHOptions; the rest is unsupported."""
    words = [w for o in options for w in shlex.split(o)]
    jumps: list[str] = []
    other: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "-J" and i + 1 < len(words):
            jumps.extend(words[i + 1].split(","))
            i += 2
            continue
        if word.startswith("-J") and len(word) > 2:
            jumps.extend(word[2:].split(","))
        elif word == "-o" and i + 1 < len(words) and words[i + 1].lower().startswith("proxyjump="):
            jumps.extend(words[i + 1].split("=", 1)[1].split(","))
            i += 1
        else:
            other.append(word)
        i += 1
    return tuple(j for j in jumps if j), other


def network_routes(net: Network, machine: str) -> list[Route]:
    """The routes to `machine` over `net` (none if it is not a member)."""
    peer = net.peers.get(machine)
    if peer is None:
        return []
    jumps, other = _jumphosts(peer.ssh_options)
    unknown = f"unsupported SSH options {' '.join(other)!r} (pyclan understands -J)" if other else None
    problem = net.unsupported or unknown
    source = f"network '{net.name}' ({net.service}, priority {net.priority})"
    name, prio = net.name, net.priority
    routes = [Route(machine, name, prio, host, peer.port, peer.user, jumps, problem, source) for host in peer.hosts]
    routes += [Route(machine, name, prio, "?", peer.port, problem=why, source=source) for why in peer.missing]
    return routes


def local_route(machine: str, info: HostInfo) -> Route:
    """The route to a running local host (`pyclan hosts`), tried after every network."""
    return Route(machine, LOCAL_HOST, -1, info.address, SSH_PORT, info.user, source="local host (pyclan hosts)")


def machine_routes(networks: Iterable[Network], machine: str, local: HostInfo | None = None) -> list[Route]:
    """Every route to `machine`, in the order they are preferred."""
    routes = [r for net in networks for r in network_routes(net, machine)]
    if local is not None:
        routes.append(local_route(machine, local))
    return routes


# -- probing ---------------------------------------------------------------------------------------


def _split_jump(spec: str) -> tuple[str, int]:
    host = spec.rsplit("@", 1)[-1]
    if host.startswith("["):
        addr, _, rest = host[1:].partition("]")
        return addr, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else SSH_PORT
    name, _, port = host.partition(":")
    return name, int(port) if port.isdigit() else SSH_PORT


def probe(route: Route, timeout: float = PROBE_TIMEOUT) -> Reachability:
    """Connect to the route's SSH port (or its first jump host's) and wait for the server's
    `SSH-` greeting; latency is the TCP connect time."""
    def result(reachable: bool, latency: float | None = None, error: str | None = None) -> Reachability:
        return Reachability(route.machine, route.network, route.priority, route.address, reachable, latency, error, via)

    via = route.jumphosts[0] if route.jumphosts else None
    if route.problem:
        return Reachability(route.machine, route.network, route.priority, route.address, False, error=route.problem)
    host, port = _split_jump(via) if via else (route.host, route.port)
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            latency = (time.perf_counter() - started) * 1000
            sock.settimeout(max(0.05, timeout - (time.perf_counter() - started)))
            banner = sock.recv(64)
    except TimeoutError:
        return result(False, error=f"no answer within {timeout:g} s")
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        return result(False, error=reason[0].lower() + reason[1:])
    if not banner.startswith(b"SSH-"):
        # a middlebox (NAT gateway, transparent proxy) may accept any connection: only sshd greets
        return result(False, error="the port accepts connections, but no SSH server answers")
    return result(True, latency=latency)


_POOL_SIZE = 64


def probe_all(routes: Sequence[Route], timeout: float = PROBE_TIMEOUT) -> list[Reachability]:
    """Probe every route at once; results in the routes' order."""
    if not routes:
        return []
    with ThreadPoolExecutor(max_workers=min(_POOL_SIZE, len(routes))) as pool:
        return list(pool.map(lambda r: probe(r, timeout), routes))


def first_reachable(
    routes: Sequence[Route], timeout: float = PROBE_TIMEOUT
) -> tuple[Route | None, list[Reachability]]:
    """The first route in order whose probe answers (probes run in parallel; returns as soon as
    every better route has failed), with the probes that decided it."""
    if not routes:
        return None, []
    pool = ThreadPoolExecutor(max_workers=min(_POOL_SIZE, len(routes)))
    try:
        futures: list[Future[Reachability]] = [pool.submit(probe, r, timeout) for r in routes]
        seen: list[Reachability] = []
        for route, future in zip(routes, futures, strict=True):
            result = future.result()
            seen.append(result)
            if result.reachable:
                return route, seen
        return None, seen
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# -- choosing a target -----------------------------------------------------------------------------


def running_local_host(machine: str, probe: bool = True) -> tuple[HostInfo, bool | None] | None:
    """The machine's local host if its process runs, and whether it answers on port 22 (None:
    not probed, `probe=False`; the connection will tell)."""
    from pyclan.hosts.config import HostsConfig
    from pyclan.hosts.state import load
    from pyclan.hosts.system import alive, port_open

    try:
        state = load(HostsConfig.from_env(), machine)
    except ClanError:
        return None
    if state is None or state.phase != "running" or not alive(state.pid, state.pid_start):
        return None
    if not probe:
        return state.info(running=True), None
    answers = port_open(state.address, SSH_PORT)
    return state.info(running=answers), answers


def _in_local_net(host: str) -> bool:
    from pathlib import Path

    from pyclan.hosts.config import HostsConfig

    cfg = HostsConfig.from_env()
    try:
        inside = ipaddress.ip_address(host) in ipaddress.ip_network(f"{cfg.net}.0/24")
    except ValueError:
        return False
    return inside and not Path("/sys/class/net", cfg.bridge).exists()


def unreachable_error(machine: str, tried: Sequence[Reachability], forced: str | None = None) -> ClanError:
    """Nothing answered: say what was tried, and what would help."""
    listing = "; ".join(t.describe() for t in tried)
    over = f"over network '{forced}'" if forced else "over any of its networks"
    hint = "is the machine up, with sshd listening? `pyclan network ping " + machine + "` shows every route; "
    hint += "pass --target-host to use another address" if forced else (
        "force one with --network NAME, or pass --target-host"
    )
    if any(_in_local_net(t.address.rsplit(":", 1)[0].strip("[]")) for t in tried):
        start = f"start it with `pyclan hosts up {machine}`"
        hint = f"an address is one of pyclan's local hosts, but none runs: {start}; " + hint
    message = f"machine '{machine}' is not reachable {over}: tried {listing}"
    return ClanError.single("deploy-error", f"machines.{machine}", message, hint=hint)


def local_host_silent_error(machine: str, info: HostInfo) -> ClanError:
    return ClanError.single(
        "deploy-error", f"machines.{machine}",
        f"the local host of machine '{machine}' runs ({info.address}), but does not answer on port {SSH_PORT}",
        hint="is sshd stopped, or did a change move it to another port? `pyclan hosts status` shows the host; "
        f"pass --target-host {info.address}:PORT to reach another port",
    )


def route_over(networks: Sequence[Network], machine: str, name: str, timeout: float = PROBE_TIMEOUT) -> Target:
    """`--network NAME`: the first answering route of `machine` over that network only."""
    net = find_network(networks, name)
    routes = network_routes(net, machine)
    if not routes:
        member_of = [n.name for n in networks if machine in n.peers]
        raise ClanError.single(
            "usage-error", "--network", f"machine '{machine}' is not a member of network '{name}'",
            hint=f"its networks: {', '.join(member_of) or '(none)'}",
        )
    route, tried = first_reachable(routes, timeout)
    if route is None:
        raise unreachable_error(machine, tried, forced=name)
    return route.target()


def best_route(
    networks: Sequence[Network], machine: str, local: tuple[HostInfo, bool | None] | None,
    timeout: float = PROBE_TIMEOUT,
) -> Target | None:
    """The machine's target over its networks (then its local host); None if it has no route at all.

    A local host not probed (`answers` None) is the only route: it is connected to directly, and
    the connection reports it as silent if nothing answers on port 22."""
    info, answers = local if local is not None else (None, False)
    routes = machine_routes(networks, machine, info if answers is not False else None)
    if not routes:
        if info is not None:  # the process runs, sshd does not answer
            raise local_host_silent_error(machine, info)
        return None
    if len(routes) == 1 and not routes[0].problem:
        target = routes[0].target()  # nothing to choose from: the connection itself will tell
        if info is not None and answers is None and routes[0].network == LOCAL_HOST:
            problem = local_host_silent_error(machine, info).problems[0]
            target = replace(target, silent=(problem.message, problem.hint or ""))
        return target
    if routes[-1].network == LOCAL_HOST and len(routes) > 1:  # the local host answered already: probe the others
        route, tried = first_reachable(routes[:-1], timeout)
        route = route or routes[-1]
    else:
        route, tried = first_reachable(routes, timeout)
    if route is None:
        if info is not None:
            tried = [*tried, Reachability(machine, LOCAL_HOST, -1, f"{info.address}:{SSH_PORT}", False,
                                          error="runs, but does not answer on port 22")]
        raise unreachable_error(machine, tried)
    return route.target()


def local_addresses(nets: Iterable[Network], machine: str, info: HostInfo) -> set[str]:
    """The addresses at which a local host is the machine itself: its own, and its networks' hosts."""
    return {info.address, *(h for n in nets if machine in n.peers for h in n.peers[machine].hosts)}


def with_local_credentials(target: Target, info: HostInfo | None, addresses: Iterable[str] = ()) -> Target:
    """A machine running as a local host is logged into with pyclan's client key, and its host key
    (recorded when it booted) is trusted, at any of its `addresses` (its local address, its
    networks' hosts; also through --target-host). Other hosts and ssh-config aliases keep the
    user's ssh config, keys and known_hosts."""
    if info is None or target.host not in {info.address, *addresses}:
        return target
    from dataclasses import replace

    from pyclan.hosts import control as hosts

    key = " ".join(info.host_key.split()[:2])
    return replace(
        target, user=target.user or info.user, identity=hosts.client_key_path(),
        known_hosts=hosts.known_hosts_path(), ssh_config=False,
        host_keys=(*target.host_keys, key) if key and key not in target.host_keys else target.host_keys,
    )


def wished_local_address(networks: Sequence[Network], machine: str) -> str | None:
    """The best plain IP address any network gives `machine` (`pyclan hosts up` takes it if it can)."""
    for net in networks:
        for host in net.peers[machine].hosts if machine in net.peers else ():
            try:
                ipaddress.ip_address(host)
            except ValueError:
                continue
            return host
    return None


# -- `pyclan network list | ping | overview` ------------------------------------------------------


@dataclass(frozen=True)
class NetworkSummary:
    """One network as `network list` shows it."""

    name: str
    service: str
    priority: int
    module: str
    members: list[str]
    unsupported: str | None = None  # why pyclan does not probe it


@dataclass(frozen=True)
class MachinePing:
    """Every route of one machine, probed; `best` is the network deploy would use now."""

    machine: str
    routes: list[Reachability]
    best: str | None = None


@dataclass(frozen=True)
class Overview:
    """Machines × networks: for each machine, its probe over each network it is in."""

    networks: list[NetworkSummary]
    machines: dict[str, dict[str, Reachability]]


def summaries(nets: Sequence[Network]) -> list[NetworkSummary]:
    return [NetworkSummary(n.name, n.service, n.priority, n.module, sorted(n.peers), n.unsupported) for n in nets]


def _check_machines(clan: Clan, machines: Sequence[str]) -> list[str]:
    clan.require_machines(machines)
    return list(dict.fromkeys(machines)) or sorted(clan.loaded.inventory.machines)


def ping(
    clan: Clan, machines: Sequence[str] = (), network: str | None = None, timeout: float = PROBE_TIMEOUT
) -> list[MachinePing]:
    """Probe every route of `machines` (default: all) over every network (or only `network`), at once."""
    names = _check_machines(clan, machines)
    nets = clan_networks(clan)
    if network is not None:
        nets = [find_network(nets, network)]
    routes = {m: machine_routes(nets, m) for m in names}
    flat = [r for m in names for r in routes[m]]
    results = iter(probe_all(flat, timeout))
    out = []
    for m in names:
        probes = [next(results) for _ in routes[m]]
        best = next((p.network for p in probes if p.reachable), None)
        out.append(MachinePing(m, probes, best))
    return out


def overview(clan: Clan, timeout: float = PROBE_TIMEOUT) -> Overview:
    """Every machine over every network it is in (the first answering host of each, else the first failure)."""
    pings = ping(clan, (), None, timeout)
    table: dict[str, dict[str, Reachability]] = {}
    for p in pings:
        cells: dict[str, Reachability] = {}
        for probe_ in p.routes:
            held = cells.get(probe_.network)
            if held is None or (probe_.reachable and not held.reachable):
                cells[probe_.network] = probe_
        table[p.machine] = cells
    return Overview(summaries(clan_networks(clan)), table)
