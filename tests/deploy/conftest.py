"""Fixtures for the fast deploy tests: a small clan, and machines that are private roots on this machine.

`local_clan.set({machine: settings})` declares what each machine should look like (the settings
of `deploytest`, the service of tests/support/deploy_support.py that the host tests use too) and
returns the opened clan; `private_roots` holds one private root per machine
(`pyclan.deploy.local`), and `local_update` runs the real `update` against them. Needs root, as CI
runs (namespaces and mounts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DeployClan, make_deploy_clan

from pyclan.clan import Clan
from pyclan.deploy.local import PrivateRoots
from pyclan.deploy.runner import HostReport
from pyclan.deploy.update import UpdateOptions, update


class LocalClan(DeployClan):
    """The deploy tests' clan (`deploytest` service), its machines reached as private roots."""

    def set(self, machines: Mapping[str, Mapping[str, Any]], targets: Mapping[str, str] | None = None) -> Clan:
        # the address is never dialled: the private roots' connector reaches machines by name
        return super().set(machines, {m: f"root@{m}.invalid" for m in machines} | dict(targets or {}))


LocalUpdate = Callable[..., list[HostReport]]


@pytest.fixture
def local_clan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalClan:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    return LocalClan(make_deploy_clan(tmp_path / "clan").root)


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
