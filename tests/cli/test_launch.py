"""`pyclan --help` is printed from a cache of what typer rendered, without importing typer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyclan.cli import launch

PROBE = (
    "import atexit, sys; atexit.register(lambda: sys.stderr.write(str('typer' in sys.modules)));"
    "from pyclan.cli.launch import run; run()"
)


def _help(columns: int) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TYPER_", "_TYPER", "_PYCLAN"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["COLUMNS"] = str(columns)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--help"], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout, done.stderr


@pytest.mark.parametrize("columns", [60, 120])
def test_root_help_from_the_cache_equals_typers(columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = launch.help_cache_path()
    assert path is not None
    if os.path.exists(path):
        os.unlink(path)
    rendered, typer_loaded = _help(columns)
    assert typer_loaded == "True" and os.path.exists(path)
    cached, typer_loaded = _help(columns)
    assert typer_loaded == "False"
    assert cached == rendered and rendered.startswith("Usage: pyclan [OPTIONS] COMMAND [ARGS]...")
    assert "  check " in cached and "--flake" in cached


def test_other_arguments_go_to_the_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["pyclan", "--version"])
    with pytest.raises(SystemExit) as exit_:
        launch.run()
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("pyclan ")
