"""A running local host that is a machine's only route is connected to without a probe first,
and a silent one is still reported as the probe reported it (issue 11: no TCP probe per host).

The "local host" here is 127.0.0.1 at a port where nothing listens, as a host whose sshd stopped.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import pytest

from pyclan.deploy import networks
from pyclan.deploy.transport import HostKeyCheck, connect
from pyclan.errors import ClanError
from pyclan.hosts.state import HostInfo

INFO = HostInfo("web", 1, "127.0.0.1", "", True, None)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_only_route_is_the_unprobed_local_host_and_a_silent_one_says_so() -> None:
    target = networks.best_route([], "web", (INFO, None))
    assert target is not None and (target.host, target.source) == ("127.0.0.1", "local host (pyclan hosts)")
    assert target.silent is not None
    silent = replace(target, port=_closed_port())
    with pytest.raises(ClanError) as err:
        asyncio.run(connect(silent, HostKeyCheck.NONE, timeout=5))
    problem = err.value.problems[0]
    assert problem.path == "machines.web"
    assert problem.message == "the local host of machine 'web' runs (127.0.0.1), but does not answer on port 22"
    assert "hosts up" not in problem.render()


def test_a_probed_silent_local_host_fails_before_connecting() -> None:
    with pytest.raises(ClanError, match=r"runs \(127.0.0.1\), but does not answer on port 22"):
        networks.best_route([], "web", (INFO, False))


def test_other_targets_keep_the_plain_connect_error() -> None:
    target = networks.best_route([], "web", (INFO, True))  # probed, answered: no silent message
    assert target is not None and target.silent is None
    with pytest.raises(ClanError, match=r"cannot connect to root@127\.0\.0\.1:"):
        asyncio.run(connect(replace(target, port=_closed_port()), HostKeyCheck.NONE, timeout=5))
