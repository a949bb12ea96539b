"""Fixtures for tests that need real local Debian hosts (`pyclan hosts`, needs root).

`local_hosts(["a", "b"])` starts hosts (or reuses running ones) and returns their HostInfo;
every host is removed at the end of the session. The hosts use a bridge, network and state
dir of their own (`pctest<N>`, `10.231.<9+N>`, one per xdist worker), so a test run never
touches the hosts of `pyclan hosts` on the same machine, and a crashed run is cleaned up by
the next one (the state dir is fixed, not per run). Override with `PYCLAN_TEST_HOSTS_BRIDGE`,
`PYCLAN_TEST_HOSTS_NET`, `PYCLAN_TEST_HOSTS_DIR`; the rootfs is the normal cached one.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from pyclan.hosts import control as hosts
from pyclan.hosts.config import HostsConfig

LocalHosts = Callable[..., list[hosts.HostInfo]]
SshRun = Callable[..., subprocess.CompletedProcess[str]]


def _test_env() -> dict[str, str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    n = int(worker[2:]) if worker[2:].isdigit() else 0
    bridge = os.environ.get("PYCLAN_TEST_HOSTS_BRIDGE", f"pctest{n}")
    env = {
        "PYCLAN_HOSTS_BRIDGE": bridge,
        "PYCLAN_HOSTS_NET": os.environ.get("PYCLAN_TEST_HOSTS_NET", f"10.231.{9 + n}"),
        "PYCLAN_HOSTS_DIR": os.environ.get(
            "PYCLAN_TEST_HOSTS_DIR", str(Path(tempfile.gettempdir()) / f"pyclan-hosts-{bridge}")
        ),
    }
    if "PYCLAN_ROOTFS" in os.environ:
        env["PYCLAN_ROOTFS"] = os.environ["PYCLAN_ROOTFS"]
    return env


@pytest.fixture(scope="session")
def hosts_config() -> Iterator[HostsConfig]:
    """The test configuration, also exported as PYCLAN_HOSTS_* for code that reads the env.

    Removes leftovers of an earlier crashed run first, builds the rootfs once (cached, ~40 s
    the very first time) and removes every host, the proxy and the bridge at the end.
    """
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _test_env().items():
            mp.setenv(key, value)
        cfg = HostsConfig.from_env()
        hosts.down(config=cfg)
        hosts.build_rootfs(config=cfg)
        try:
            yield cfg
        finally:
            hosts.down(config=cfg)


@pytest.fixture(scope="session")
def local_hosts(hosts_config: HostsConfig) -> LocalHosts:
    """Factory: `local_hosts(["a", "b"], fresh=False) -> list[HostInfo]`.

    Running hosts are reused (`up` is idempotent); `fresh=True` removes them first so the
    test gets pristine machines.
    """

    def start(names: Sequence[str], fresh: bool = False) -> list[hosts.HostInfo]:
        if fresh:
            hosts.down(list(names), config=hosts_config)
        return hosts.up(list(names), config=hosts_config)

    return start


@pytest.fixture(scope="session")
def ssh_run(hosts_config: HostsConfig) -> SshRun:
    """`ssh_run(host, "cmd", …, check=True)`: run a command as root over real ssh."""

    def run(
        host: hosts.HostInfo, *command: str, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            hosts.ssh_command(host, *command, config=hosts_config),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ssh {host.name} {' '.join(command)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
            )
        return proc

    return run
