"""Fixtures for the vars engine: a test clan with the `vartest` service and an isolated admin key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyclan.clan import Clan, open_clan
from pyclan.vars.keys import KEY_FILE_ENV, keygen

SERVICE = Path(__file__).with_name("vartest_service.py")


def toml_value(v: Any) -> str:
    return json.dumps(v)  # JSON scalars are TOML scalars


@dataclass
class VarsClan:
    dir: Path
    home: Path

    @property
    def admin_key(self) -> Path:
        return Path(os.environ[KEY_FILE_ENV])

    def open(self) -> Clan:
        return open_clan(self.dir, {})

    def configure(
        self,
        peers: tuple[str, ...] = ("a", "b"),
        solo: tuple[str, ...] = ("c",),
        settings: dict[str, Any] | None = None,
        machine_settings: dict[str, dict[str, Any]] | None = None,
        extra_machines: tuple[str, ...] = (),
    ) -> None:
        """(Re)write clan.toml: machines a, b in the mesh (role peer), c alone (role solo)."""
        machines = sorted({*peers, *solo, *extra_machines})
        lines = ['[meta]', 'name = "vt"', ""]
        lines += [f"[machines.{m}]" for m in machines]
        lines += ["", "[instances.mesh]", 'module.name = "vartest"', 'module.input = "self"']
        lines += [f"roles.peer.machines.{m} = {{}}" for m in peers if not (machine_settings or {}).get(m)]
        for k, v in (settings or {}).items():
            lines.append(f"roles.peer.settings.{k} = {toml_value(v)}")
        for m, ms in (machine_settings or {}).items():
            for k, v in ms.items():
                lines.append(f"roles.peer.machines.{m}.settings.{k} = {toml_value(v)}")
        if solo:
            lines += ["", "[instances.alone]", 'module.name = "vartest"', 'module.input = "self"']
            lines += [f"roles.solo.machines.{m} = {{}}" for m in solo]
        (self.dir / "clan.toml").write_text("\n".join(lines) + "\n")

    def cli(
        self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the real `pyclan` command in a subprocess."""
        return subprocess.run(
            [*pyclan_command(), "-C", str(self.dir), *args],
            input=input, capture_output=True, timeout=timeout, check=False,
            env={**os.environ, "COLUMNS": "500", **(env or {})},  # rich wraps error lines at 80 otherwise
        )


    def run(
        self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """The same command in-process (typer's runner; ~1 s faster per call than a subprocess)."""
        from pyclan.cli.main import app

        argv = ["-C", str(self.dir), *args]
        result = CliRunner().invoke(app, argv, input=input, env={"COLUMNS": "500", **(env or {})})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(argv, result.exit_code, result.stdout_bytes, result.stderr_bytes)


def pyclan_command() -> list[str]:
    exe = Path(sys.executable).parent / "pyclan"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from pyclan.cli.main import run; run()"]


@pytest.fixture
def vclan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[VarsClan]:
    """A clan in tmp_path/clan with services/vartest.py and admin 'alice' registered."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(KEY_FILE_ENV, str(home / "alice.key"))
    root = tmp_path / "clan"
    (root / "services").mkdir(parents=True)
    shutil.copy(SERVICE, root / "services" / "vartest.py")
    vc = VarsClan(root, home)
    vc.configure()
    keygen(root, "alice")
    yield vc


ANSWERS = {"pw": {"password": "correct horse battery staple 42"}}


@pytest.fixture
def answers(tmp_path: Path) -> Path:
    path = tmp_path / "answers.json"
    path.write_text(json.dumps(ANSWERS))
    return path
