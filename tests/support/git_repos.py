"""Helpers for inputs tests: real git repositories, the real CLI, test service modules."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def service_code(name: str, marker: str = "v1", roles: tuple[str, ...] = ("default",)) -> str:
    """A service module whose description carries `marker`, so tests can tell versions apart."""
    lines = [
        "from pyclan.config.machine_config import MachineConfig",
        "from pyclan.services.service import InstanceContext, Service",
        "",
        f"service = Service({name!r}, description={marker!r})",
    ]
    for role in roles:
        lines += [
            "",
            "",
            f"@service.role({role!r})",
            f"def _{role.replace('-', '_')}(ctx: InstanceContext) -> MachineConfig:",
            f"    return MachineConfig().file('/etc/{name}', {marker!r})",
        ]
    return "\n".join(lines) + "\n"


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout.strip()


@dataclass
class Repo:
    """A real git repository made by a test."""

    path: Path

    @property
    def file_url(self) -> str:
        return f"git+file://{self.path}"

    def write(self, rel: str, text: str) -> Repo:
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return self

    def service(self, file_stem: str, name: str, marker: str = "v1") -> Repo:
        return self.write(f"services/{file_stem}.py", service_code(name, marker))

    def commit(self, message: str = "change") -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return git(self.path, "rev-parse", f"{ref}^{{commit}}")


MakeRepo = Callable[..., Repo]


def write_clan(root: Path, toml: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "clan.toml").write_text(textwrap.dedent(toml))
    return root


def pyclan_command() -> list[str]:
    """The installed `pyclan` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / "pyclan"
    if script.exists():
        return [str(script)]
    found = shutil.which("pyclan")
    assert found, "the pyclan console script is not installed"
    return [found]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_pyclan(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    """Run the real CLI in a subprocess."""
    proc = subprocess.run(
        [*pyclan_command(), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
        check=False,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class GitDaemon:
    base: Path
    port: int

    def url(self, repo: str) -> str:
        return f"git+git://127.0.0.1:{self.port}/{repo}"
