"""Helpers for the deploy tests on local hosts: a small clan with one configurable service.

The clan's own service `deploytest` turns per-machine settings into files, packages, users,
groups, units and hooks, so each test states exactly what a host should look like. Settings go
to `inventory.json` (Clan's own format), written anew whenever a test changes the desired state.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyclan.clan import Clan, open_clan
from pyclan.deploy.targets import resolve_target
from pyclan.deploy.transport import CommandResult, connect
from pyclan.hosts import control as hosts
from pyclan.vars.api import keygen

SshRun = Callable[..., subprocess.CompletedProcess[str]]
LocalHosts = Callable[..., list[hosts.HostInfo]]

#: the hash every `deploytest` password secret holds (`openssl passwd -6 -salt pyclantest secret`)
PASSWORD_HASH = "$6$pyclantest$cBgDTkQNMZpyCqqPbdpaHb1FlWUy94/ANzaZ8Hi77BrobvSWnUJhSfGaUbYMcG1.6P5RdiP.JctSqkkBKhgce."

SERVICE = '''
"""A service for deploy tests: every part of a MachineConfig from settings."""

from pydantic import BaseModel

from pyclan.services import InstanceContext, MachineConfig, Service
from pyclan.config.generators import Generator, VarFile

service = Service("deploytest", description="deploy test service")


class Settings(BaseModel):
    files: dict[str, str] = {}
    packages: list[str] = []
    users: dict[str, list[str]] = {}  # user -> supplementary groups
    groups: list[str] = []
    units: dict[str, str] = {}  # unit name -> ExecStart
    restart_on: dict[str, list[str]] = {}
    hooks: dict[str, str] = {}
    hook_after: dict[str, list[str]] = {}
    password_user: str | None = None
    unit_files: dict[str, str] = {}  # unit name -> its whole content
    checks: dict[str, dict] = {}  # check name -> MachineConfig.check keyword arguments
    reloads: dict[str, list[str]] = {}  # unit pyclan does not own -> paths whose change reloads it


@service.role("default", interface=Settings)
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    s = ctx.settings
    c = MachineConfig()
    for path, text in s.files.items():
        c.file(path, text)
    c.package(*s.packages)
    for group in s.groups:
        c.group(group)
    for user, groups in s.users.items():
        extra = {}
        if user == s.password_user:
            extra["hashed_password_file"] = ctx.vars.secret_path("deploytest-password", "hash")
        c.user(user, groups=groups, shell="/bin/sh", **extra)
    for name, start in s.units.items():
        unit = f"[Unit]\\nDescription={name}\\n[Service]\\nExecStart={start}\\n"
        unit += "[Install]\\nWantedBy=multi-user.target\\n"
        c.unit(name, unit, restart_on=s.restart_on.get(name, []))
    for name, content in s.unit_files.items():
        c.unit(name, content, restart_on=s.restart_on.get(name, []))
    for name, script in s.hooks.items():
        c.hook(name, script, after=s.hook_after.get(name, []))
    for name, kwargs in s.checks.items():
        c.check(name, **kwargs)
    for unit, paths in s.reloads.items():
        c.reload_unit(unit, on=paths)
    return c


def _hash(_inp):
    return {"hash": HASH + "\\n"}


@default.generators
def generators(ctx):
    if ctx.settings.password_user is None:
        return []
    return [Generator("deploytest-password", files={"hash": VarFile(secret=True, mode="0400")}, run=_hash)]
'''.replace("HASH", repr(PASSWORD_HASH))


@dataclass
class DeployClan:
    """A clan directory whose desired state a test rewrites with `set`."""

    root: Path

    def set(self, machines: Mapping[str, Mapping[str, Any]], targets: Mapping[str, str] | None = None) -> Clan:
        """Declare `machines` (name → deploytest settings) and return the freshly opened clan.

        `targets` sets `deploy.targetHost` of machines (used when their local host is not up).
        """
        hosts = dict(targets or {})
        inventory: dict[str, Any] = {
            "meta": {"name": "deploy-tests"},
            "machines": {
                m: {"tags": ["test"], **({"deploy": {"targetHost": hosts[m]}} if m in hosts else {})} for m in machines
            },
            "instances": {
                "deploytest": {
                    "module": {"name": "deploytest", "input": "self"},
                    "roles": {"default": {"machines": {m: {"settings": dict(s)} for m, s in machines.items()}}},
                }
            },
        }
        (self.root / "inventory.json").write_text(json.dumps(inventory, indent=2))
        return self.open()

    def open(self) -> Clan:
        return open_clan(self.root, {})

    def cli(self, *args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the `pyclan` command in this clan (a real process, like a user would)."""
        proc = subprocess.run(
            [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(self.root), *args],
            capture_output=True, text=True, timeout=timeout, check=False, env=dict(os.environ),
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"pyclan {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(name="started_hosts")
def started_hosts_fixture(local_hosts: LocalHosts) -> Iterator[LocalHosts]:
    """`started_hosts(names)`: fresh hosts for one test, stopped after it.

    Hosts are stopped again because every booted systemd holds inotify instances, and the
    kernel's per-user limit (fs.inotify.max_user_instances, often 128) caps how many run at once.
    """
    names: list[str] = []

    def start(wanted: list[str], fresh: bool = True) -> list[hosts.HostInfo]:
        names.extend(wanted)
        return local_hosts(wanted, fresh=fresh)

    yield start
    if names:
        hosts.down(names)


def make_deploy_clan(root: Path) -> DeployClan:
    """A clan with the deploytest service and an admin age key (env must point to the key)."""
    (root / "services").mkdir(parents=True, exist_ok=True)
    (root / "services" / "deploytest.py").write_text(SERVICE)
    keygen(root, "tester")
    return DeployClan(root)


def clan_ssh(root: Path) -> SshRun:
    """Like the `ssh_run` fixture, but through pyclan's transport with the clan's own host keys.

    Needed once the `sshd` service has given a host the clan's host key: OpenSSH with the local
    hosts' known_hosts would then refuse it as changed.
    """

    def run(host: hosts.HostInfo, *command: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        target = resolve_target(open_clan(root, {}), host.name)

        async def go() -> CommandResult:
            async with await connect(target) as conn:
                return await conn.run(" ".join(command), timeout=timeout)

        result = asyncio.run(go())
        proc = subprocess.CompletedProcess(list(command), result.exit_status, result.text,
                                           result.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            what = " ".join(command)
            raise AssertionError(f"{host.name}: {what} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    return run


def read_files(ssh_run: SshRun, host: hosts.HostInfo, paths: list[str]) -> dict[str, str | None]:
    """Content of each path on the host (None: absent), in one ssh round trip."""
    script = "; ".join(
        f"if [ -e '{p}' ]; then printf '@@%s\\n' '{p}'; cat '{p}'; else printf '@@-%s\\n' '{p}'; fi" for p in paths
    )
    out = ssh_run(host, script).stdout
    result: dict[str, str | None] = {}
    current: str | None = None
    for line in out.splitlines(keepends=True):
        if line.startswith("@@-"):
            result[line[3:].strip()] = None
            current = None
        elif line.startswith("@@"):
            current = line[2:].strip()
            result[current] = ""
        elif current is not None:
            result[current] = (result[current] or "") + line
    return result
