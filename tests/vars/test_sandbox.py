"""Generator scripts in bubblewrap: only their temporary folder is writable, and no network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyclan.config.generators import Generator, Prompt, VarFile
from pyclan.errors import ClanError
from pyclan.vars import run
from pyclan.vars.api import generate, get
from pyclan.vars.layout import GenKey

from .conftest import VarsClan


def test_bwrap_is_installed() -> None:
    assert shutil.which("bwrap"), "install bubblewrap: the sandbox tests need it (apt-get install bubblewrap)"


def test_script_cannot_write_outside_and_has_no_network(vclan: VarsClan, tmp_path: Path) -> None:
    probe = tmp_path / "escaped.txt"
    vclan.configure(settings={"probe": str(probe), "prompt": False})
    generate(vclan.open(), ["a"], generators=["probe"])
    assert not probe.exists(), "the sandboxed script wrote outside its temporary folder"
    assert get(vclan.open(), "a", "probe/ifaces")[1].strip() == b"1"  # only loopback
    # without the sandbox the same script reaches the host (which proves the probe works)
    generate(vclan.open(), ["a"], generators=["probe"], sandbox=False)
    assert probe.read_text() == "escaped\n"


def test_system_is_read_only_inside(tmp_path: Path) -> None:
    gen = Generator("ro", files={"f": VarFile()}, script='touch /usr/pyclan-sandbox-probe; echo x > "$out/f"')
    with pytest.raises(ClanError) as err:
        run.execute(GenKey("ro", "m"), gen, {}, {}, sandbox=True)
    assert "failed with exit code 1" in str(err.value) and "Read-only file system" in str(err.value)
    assert not Path("/usr/pyclan-sandbox-probe").exists()


def test_inputs_and_outputs_in_the_sandbox() -> None:
    gen = Generator(
        "io", files={"sum": VarFile(), "p": VarFile(secret=False)},
        script='cat "$in/dep/a" "$in/dep/b" > "$out/sum"; cp "$prompts/q" "$out/p"; test "$PWD" != /',
        prompts={"q": Prompt()},
    )
    out = run.execute(GenKey("io", "m"), gen, {"dep": {"a": b"1", "b": b"2"}}, {"q": "answer"}, sandbox=True)
    assert out == {"sum": b"12", "p": b"answer"}


def test_missing_bwrap_suggests_no_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    gen = Generator("x", files={"f": VarFile()}, script='echo 1 > "$out/f"')
    with pytest.raises(ClanError) as err:
        run.execute(GenKey("x", "m"), gen, {}, {}, sandbox=True)
    problem = err.value.problems[0]
    assert "bubblewrap (bwrap)" in problem.message and "is not installed" in problem.message
    assert problem.hint is not None and "--no-sandbox" in problem.hint and "apt-get install bubblewrap" in problem.hint
    assert run.execute(GenKey("x", "m"), gen, {}, {}, sandbox=False) == {"f": b"1\n"}


def test_failing_script_and_strict_mode() -> None:
    # `set -euo pipefail`: an unset variable stops the script before it writes anything
    gen = Generator("s", files={"f": VarFile()}, script='echo "$undefined_var" > "$out/f"')
    with pytest.raises(ClanError, match="unbound variable"):
        run.execute(GenKey("s", None), gen, {}, {}, sandbox=True)


def test_stale_temporary_folders_of_dead_runs_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = tmp_path / "pyclan-vars-999999999-abc"  # no such pid
    dead.mkdir()
    (dead / "in").mkdir()
    alive = tmp_path / "pyclan-vars-1-abc"  # pid 1 exists
    alive.mkdir()
    run.cleanup_stale_tempdirs()
    assert not dead.exists() and alive.exists()
