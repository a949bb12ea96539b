"""Fixtures for the fast deploy tests: a small clan, and machines that are private roots on this machine.

`local_clan.set({machine: settings})` declares what each machine should look like (files, users,
groups, hooks, checks, units, a password secret) and returns the opened clan; `private_roots`
holds one private root per machine (`pyclan.deploy.local`), and `local_update` runs the real
`update` against them. Needs root, as CI runs (namespaces and mounts).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from pyclan.clan import Clan, open_clan
from pyclan.deploy.local import PrivateRoots
from pyclan.deploy.runner import HostReport
from pyclan.deploy.update import UpdateOptions, update
from pyclan.vars.api import keygen

#: the hash the password secret holds (`openssl passwd -6 -salt pyclantest secret`)
PASSWORD_HASH = "$6$pyclantest$cBgDTkQNMZpyCqqPbdpaHb1FlWUy94/ANzaZ8Hi77BrobvSWnUJhSfGaUbYMcG1.6P5RdiP.JctSqkkBKhgce."

SERVICE = '''
"""Every part of a MachineConfig a private root supports, from settings."""

from pydantic import BaseModel

from pyclan.services import InstanceContext, MachineConfig, Service
from pyclan.config.generators import Generator, VarFile

service = Service("localtest", description="fast deploy test service")


class Settings(BaseModel):
    files: dict[str, str] = {}
    users: dict[str, list[str]] = {}  # user -> supplementary groups
    groups: list[str] = []
    hooks: dict[str, str] = {}
    checks: dict[str, str] = {}  # check name -> command
    units: dict[str, str] = {}  # unit name -> ExecStart
    password_user: str | None = None


@service.role("default", interface=Settings)
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    s = ctx.settings
    c = MachineConfig()
    for path, text in s.files.items():
        c.file(path, text)
    for group in s.groups:
        c.group(group)
    for user, groups in s.users.items():
        extra = {}
        if user == s.password_user:
            extra["hashed_password_file"] = ctx.vars.secret_path("localtest-password", "hash")
        c.user(user, groups=groups, shell="/bin/sh", **extra)
    for name, script in s.hooks.items():
        c.hook(name, script)
    for name, command in s.checks.items():
        c.check(name, command=command, timeout=1)
    for name, start in s.units.items():
        c.unit(name, f"[Unit]\\nDescription={name}\\n[Service]\\nExecStart={start}\\n")
    return c


def _hash(_inp):
    return {"hash": HASH + "\\n"}


@default.generators
def generators(ctx):
    if ctx.settings.password_user is None:
        return []
    return [Generator("localtest-password", files={"hash": VarFile(secret=True, mode="0400")}, run=_hash)]
'''.replace("HASH", repr(PASSWORD_HASH))


@dataclass
class LocalClan:
    """A clan directory whose desired state a test rewrites with `set`."""

    root: Path

    def set(self, machines: Mapping[str, Mapping[str, Any]]) -> Clan:
        inventory: dict[str, Any] = {
            "meta": {"name": "local-tests"},
            # the address is never dialled: the private roots' connector reaches machines by name
            "machines": {m: {"deploy": {"targetHost": f"root@{m}.invalid"}} for m in machines},
            "instances": {
                "localtest": {
                    "module": {"name": "localtest", "input": "self"},
                    "roles": {"default": {"machines": {m: {"settings": dict(s)} for m, s in machines.items()}}},
                }
            },
        }
        (self.root / "inventory.json").write_text(json.dumps(inventory, indent=2))
        return self.open()

    def open(self) -> Clan:
        return open_clan(self.root, {})


LocalUpdate = Callable[..., list[HostReport]]


@pytest.fixture
def local_clan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalClan:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    root = tmp_path / "clan"
    (root / "services").mkdir(parents=True)
    (root / "services" / "localtest.py").write_text(SERVICE)
    keygen(root, "tester")
    return LocalClan(root)


@pytest.fixture
def private_roots(tmp_path: Path) -> Iterator[PrivateRoots]:
    with PrivateRoots(tmp_path / "roots") as roots:
        yield roots


@pytest.fixture
def local_update(private_roots: PrivateRoots) -> LocalUpdate:
    """`update(clan, machines, **options)` with every host a private root."""

    def run(clan: Clan, machines: Sequence[str], progress: Callable[[str, str], None] | None = None,
            **options: Any) -> list[HostReport]:
        opts = replace(UpdateOptions(), connector=private_roots.connect, **options)
        return update(clan, machines, opts, progress) if progress else update(clan, machines, opts)

    return run


ReadFiles = Callable[[str, Sequence[str]], dict[str, str | None]]
OnHost = Callable[..., Any]


@pytest.fixture
def on_host(private_roots: PrivateRoots) -> OnHost:
    """`on_host(machine, script)`: run a script inside the machine's private root (as root)."""

    def run(machine: str, script: str, check: bool = True) -> Any:
        return private_roots.root(machine).run(script, check=check)

    return run


@pytest.fixture
def read_files(on_host: OnHost) -> ReadFiles:
    """`read_files(machine, paths)`: each path's content inside the machine (None: absent), in one script."""

    def read(machine: str, paths: Sequence[str]) -> dict[str, str | None]:
        script = "; ".join(
            f"if [ -e '{p}' ]; then printf '@@%s\\n' '{p}'; cat '{p}'; else printf '@@-%s\\n' '{p}'; fi"
            for p in paths
        )
        result: dict[str, str | None] = {}
        current: str | None = None
        for line in on_host(machine, script).stdout.splitlines(keepends=True):
            if line.startswith("@@-"):
                result[line[3:].strip()] = None
                current = None
            elif line.startswith("@@"):
                current = line[2:].strip()
                result[current] = ""
            elif current is not None:
                result[current] = (result[current] or "") + line
        return result

    return read
