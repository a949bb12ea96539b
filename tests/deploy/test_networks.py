"""Choosing a machine's target over its networks (clan_lib.network's model), with real TCP listeners.

Every network here is a service of the test clan (`mesh`) or the bundled `internet`: any service
that exports `networking` and `peer` is a network. Listeners on 127.0.0.1 stand for machines that
answer; a closed port for one that does not.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from pyclan import api
from pyclan.clan import Clan
from pyclan.deploy import networks
from pyclan.deploy.targets import resolve_target
from pyclan.deploy.transport import HostKeyCheck, Target, _host_key_error, _Verdict
from pyclan.errors import ClanError

MESH = '''
from pydantic import BaseModel

from pyclan.services import InstanceContext, MachineConfig, Service
from pyclan.services.exports import build_scope_key

service = Service("mesh", description="a test network", exports_out=("peer", "networking"))
PRIORITY = {"fast": 1500, "slow": 500, "onion": 10}


class Settings(BaseModel):
    hosts: list[dict] = []
    port: int = 22
    user: str | None = None
    options: list[str] = []


@service.role("default", interface=Settings)
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    return MachineConfig()


@default.exports
def peer(ctx):
    s = ctx.settings
    return ctx.mk_exports({"peer": {"hosts": s.hosts, "port": s.port, "user": s.user, "SSHOptions": s.options}})


@service.instance_exports
def networking(ctx):
    out = {}
    for name in ctx.instances:
        value = {"priority": PRIORITY.get(name, 1000)}
        if name == "onion":
            value["module"] = "clan_lib.network.tor"
        out[build_scope_key(ctx.service_name, name)] = {"networking": value}
    return out
'''


class Greeter:
    """A TCP listener that greets like sshd (`SSH-2.0-…`), or with `greeting` (b"": silent)."""

    def __init__(self, greeting: bytes = b"SSH-2.0-OpenSSH_9.2p1 test\r\n") -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.greeting = greeting
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.greeting:
                    conn.sendall(self.greeting)

    def getsockname(self) -> tuple[str, int]:
        return self.sock.getsockname()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Greeter]:
    greeter = Greeter()
    yield greeter
    greeter.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port(sock: Greeter) -> int:
    return int(sock.getsockname()[1])


def _clan(make_clan: object, internet_port: int, fast_port: int, slow_port: int, extra: str = "") -> Clan:
    toml = f"""
[meta]
name = "nets"

[machines.web]
[machines.db]

[instances.internet]
module.name = "internet"
roles.default.machines.web.settings.host = "127.0.0.1"
roles.default.machines.web.settings.port = {internet_port}

[instances.fast]
module.name = "mesh"
module.input = "self"
roles.default.machines.web.settings.hosts = [{{ plain = "127.0.0.1" }}]
roles.default.machines.web.settings.port = {fast_port}

[instances.slow]
module.name = "mesh"
module.input = "self"
roles.default.machines.web.settings.hosts = [{{ plain = "127.0.0.1" }}]
roles.default.machines.web.settings.port = {slow_port}
roles.default.machines.web.settings.user = "deploy"
roles.default.machines.db.settings.hosts = [{{ plain = "127.0.0.1" }}]
roles.default.machines.db.settings.port = {slow_port}
{extra}"""
    return make_clan(toml, services={"mesh": MESH})  # type: ignore[operator, no-any-return]


def test_networks_are_listed_by_priority_with_their_members(make_clan: object) -> None:
    clan = _clan(make_clan, 1, 2, 3)
    found = [(n.name, n.service, n.priority, sorted(n.peers)) for n in networks.clan_networks(clan)]
    assert found == [
        ("internet", "internet", 2000, ["web"]),
        ("fast", "mesh", 1500, ["web"]),
        ("slow", "mesh", 500, ["db", "web"]),
    ]


def test_the_best_priority_that_answers_wins(make_clan: object, listener: Greeter) -> None:
    """internet (2000) is closed, fast (1500) and slow (500) answer: fast is used."""
    slow = Greeter()
    clan = _clan(make_clan, _closed_port(), _port(listener), _port(slow))
    target = resolve_target(clan, "web")
    slow.close()
    assert (target.host, target.port, target.source) == (
        "127.0.0.1", _port(listener), "network 'fast' (mesh, priority 1500)"
    )


def test_a_port_that_accepts_but_does_not_greet_like_sshd_is_not_reachable(
    make_clan: object, listener: Greeter
) -> None:
    """A NAT gateway or transparent proxy may accept any connection: only an SSH greeting counts."""
    silent, other = Greeter(b""), Greeter(b"HTTP/1.1 400 Bad Request\r\n")
    clan = _clan(make_clan, _port(silent), _port(other), _port(listener))
    target = resolve_target(clan, "web")
    assert target.source == "network 'slow' (mesh, priority 500)"
    pings = networks.ping(clan, ["web"], timeout=0.5)[0].routes
    assert [(p.network, p.reachable) for p in pings] == [("internet", False), ("fast", False), ("slow", True)]
    assert pings[1].error == "the port accepts connections, but no SSH server answers"
    silent.close()
    other.close()


def test_a_higher_priority_network_that_answers_is_preferred(make_clan: object, listener: Greeter) -> None:
    clan = _clan(make_clan, _port(listener), _port(listener), _port(listener))
    assert resolve_target(clan, "web").source == "network 'internet' (internet, priority 2000)"


def test_network_option_forces_one_network(make_clan: object, listener: Greeter) -> None:
    clan = _clan(make_clan, _port(listener), _port(listener), _port(listener))
    target = resolve_target(clan, "web", network="slow")
    assert (target.source, target.user) == ("network 'slow' (mesh, priority 500)", "deploy")


def test_target_host_overrides_every_network(make_clan: object, listener: Greeter) -> None:
    clan = _clan(make_clan, _port(listener), _port(listener), _port(listener))
    target = resolve_target(clan, "web", "admin@192.0.2.7:2222")
    assert (target.host, target.user, target.port, target.source) == ("192.0.2.7", "admin", 2222, "--target-host")


def test_inventory_target_host_is_used_first_as_clan_does(make_clan: object, listener: Greeter) -> None:
    extra = '\n[machines.web.deploy]\ntargetHost = "root@192.0.2.8"\n'
    clan = _clan(make_clan, _port(listener), _port(listener), _port(listener), extra)
    target = resolve_target(clan, "web")
    assert (target.host, target.source) == ("192.0.2.8", "machines.web.deploy.targetHost")


def test_no_reachable_network_lists_what_was_tried(make_clan: object) -> None:
    closed = _closed_port()
    clan = _clan(make_clan, closed, closed, closed)
    with pytest.raises(ClanError) as err:
        resolve_target(clan, "web")
    text = err.value.problems[0].render()
    assert "machine 'web' is not reachable over any of its networks" in text
    for name in ("internet", "fast", "slow"):
        assert f"{name} (127.0.0.1:{closed}): connection refused" in text, text
    assert "--network NAME" in text and "pyclan network ping web" in text


def test_forced_network_that_does_not_answer_says_so(make_clan: object, listener: Greeter) -> None:
    closed = _closed_port()
    clan = _clan(make_clan, _port(listener), _port(listener), closed)
    with pytest.raises(ClanError) as err:
        resolve_target(clan, "web", network="slow")
    assert f"not reachable over network 'slow': tried slow (127.0.0.1:{closed}): connection refused" in str(
        err.value.problems[0].render()
    )


def test_unknown_network_gets_a_did_you_mean(make_clan: object) -> None:
    clan = _clan(make_clan, 1, 2, 3)
    with pytest.raises(ClanError) as err:
        resolve_target(clan, "web", network="slwo")
    problem = err.value.problems[0]
    assert "no network named 'slwo'" in problem.message and "did you mean 'slow'?" in (problem.hint or "")


def test_network_the_machine_is_not_in_names_its_networks(make_clan: object) -> None:
    clan = _clan(make_clan, 1, 2, 3)
    with pytest.raises(ClanError) as err:
        resolve_target(clan, "db", network="fast")
    problem = err.value.problems[0]
    assert "'db' is not a member of network 'fast'" in problem.message and problem.hint == "its networks: slow"


def test_machine_without_any_route_keeps_the_old_message(make_clan: object) -> None:
    clan = make_clan('[meta]\nname = "nets"\n[machines.lonely]\n')  # type: ignore[operator]
    with pytest.raises(ClanError) as err:
        resolve_target(clan, "lonely")
    assert "no target host is known for machine 'lonely'" in err.value.problems[0].message


def test_var_references_and_jump_hosts(make_clan: object) -> None:
    """Hosts may reference a public var (Clan's tor hostname); `-J` in SSHOptions becomes a jump host."""
    exports = {
        "mesh:fast::": {"networking": {"priority": 1500}},
        "mesh:fast:default:web": {"peer": {
            "hosts": [{"var": {"machine": "web", "generator": "tor", "file": "hostname"}}, {"plain": "10.0.0.5"}],
            "SSHOptions": ["-J bastion.example.com"], "port": 2222,
        }},
        "mesh:onion::": {"networking": {"priority": 10, "module": "clan_lib.network.tor"}},
        "mesh:onion:default:web": {"peer": {"hosts": [{"plain": "abc.onion"}], "SSHOptions": ["-o", "Foo=bar"]}},
    }
    values = {("web", "tor", "hostname"): "xyz.onion\n"}
    nets = networks.networks_from_exports(exports, lambda m, g, f: values.get((m, g, f)))
    routes = networks.machine_routes(nets, "web")
    assert [(r.network, r.host, r.port, r.jumphosts, r.problem is None) for r in routes] == [
        ("fast", "xyz.onion", 2222, ("bastion.example.com",), True),
        ("fast", "10.0.0.5", 2222, ("bastion.example.com",), True),
        ("onion", "abc.onion", 22, (), False),
    ]
    assert routes[0].target().jump == "bastion.example.com"
    assert "needs a Tor SOCKS proxy" in (routes[2].problem or "")
    missing = networks.networks_from_exports(exports, lambda m, g, f: None)
    unread = [r for r in networks.machine_routes(missing, "web") if r.network == "fast"][-1]
    assert unread.problem == "var tor/hostname of web is not generated yet (`pyclan vars generate web`)"


def test_unsupported_ssh_options_make_the_route_unusable_with_a_reason() -> None:
    exports = {
        "mesh:m::": {"networking": {}},
        "mesh:m:default:web": {"peer": {"hosts": [{"plain": "h"}], "SSHOptions": ["-o", "ProxyCommand=evil"]}},
    }
    (route,) = networks.machine_routes(networks.networks_from_exports(exports, lambda *a: None), "web")
    assert route.problem == "unsupported SSH options '-o ProxyCommand=evil' (pyclan understands -J)"
    assert networks.probe(route).error == route.problem


def test_api_results_and_cli_json_are_the_same(make_clan: object, listener: Greeter) -> None:
    closed = _closed_port()
    clan = _clan(make_clan, closed, _port(listener), _port(listener))
    flake = str(clan.dir)
    listed = api.to_jsonable(api.list_networks(flake))
    assert [(n["name"], n["priority"], n["members"]) for n in listed] == [
        ("internet", 2000, ["web"]), ("fast", 1500, ["web"]), ("slow", 500, ["db", "web"])
    ]
    pings = api.to_jsonable(api.ping_machines(["web"], flake=flake))
    assert [(r["network"], r["reachable"]) for r in pings[0]["routes"]] == [
        ("internet", False), ("fast", True), ("slow", True)
    ]
    assert pings[0]["best"] == "fast"
    view = api.to_jsonable(api.network_overview(flake=flake))
    cells = view["machines"]["web"]
    assert cells["internet"]["reachable"] is False and cells["internet"]["error"] == "connection refused"
    assert cells["fast"]["reachable"] is True and cells["fast"]["latency_ms"] >= 0
    assert set(view["machines"]["db"]) == {"slow"}
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", flake, "network", "list", "--json"],
        capture_output=True, text=True, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == listed
    proc = subprocess.run(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", flake, "network", "ping", "nope"],
        capture_output=True, text=True, env=env, check=False,
    )
    assert proc.returncode == 1 and "no machine named 'nope' in the inventory" in proc.stderr


def test_ssh_keyscan_hint_names_the_port() -> None:
    target = Target(machine="web", host="192.0.2.9", port=2222)
    hint = _host_key_error(target, HostKeyCheck.STRICT, _Verdict(reason="unknown")).problems[0].hint or ""
    assert "ssh-keyscan -p 2222 192.0.2.9 >> ~/.ssh/known_hosts" in hint
