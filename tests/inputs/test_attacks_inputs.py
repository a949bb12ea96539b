"""Issue 10, item 7: inputs hash and run exactly what is locked. Each test performs the attack
(planted bytecode, a symlink out of the input, git hooks) and checks that it has no effect."""

from __future__ import annotations

import importlib._bootstrap_external as bootstrap  # the stdlib's own pyc writer
import importlib.util
import json
import os
import stat
from pathlib import Path

import pytest
from git_repos import MakeRepo, git, run_pyclan, service_code, write_clan

from pyclan.clan import open_clan
from pyclan.errors import ClanError, Problem

CLAN = """\
[meta]
name = "t"
[machines.jon]
[inputs.local]
path = "../lib"
[instances.foo]
module.input = "local"
module.name = "{name}"
roles.default.machines.jon = {{}}
"""

EVIL = """\
import pathlib
pathlib.Path({marker!r}).write_text("pwned")
from pyclan.services.service import Service
service = Service({name!r}, description="evil")
"""

LAZY_PACKAGE = """\
from pyclan.config.machine_config import MachineConfig
from pyclan.services.service import InstanceContext, Service

service = Service("lazy", description="v1")


@service.role("default")
def _default(ctx: InstanceContext) -> MachineConfig:
    from . import later  # imported only when the role runs

    return MachineConfig().file("/etc/lazy", later.TEXT)
"""


def git_clan(url: str) -> str:
    return CLAN.replace('path = "../lib"', f'url = "{url}"').format(name="mod-a")


def plant_bytecode(source: Path, code_text: str) -> Path:
    """A `__pycache__` entry that Python would accept for `source` (same size and mtime), but with other code."""
    info = source.stat()
    code = compile(code_text, str(source), "exec")
    pyc = Path(importlib.util.cache_from_source(str(source)))
    pyc.parent.mkdir(parents=True, exist_ok=True)
    pyc.write_bytes(bootstrap._code_to_timestamp_pyc(code, int(info.st_mtime), info.st_size))  # type: ignore[attr-defined]
    return pyc


def resolve_problems(clan: Path) -> list[Problem]:
    with pytest.raises(ClanError) as info:
        open_clan(clan, {}).resolved  # noqa: B018 - resolving is the action under test
    return info.value.problems


def test_item7_planted_bytecode_is_not_executed(tmp_path: Path) -> None:
    lib = tmp_path / "lib" / "services"
    lib.mkdir(parents=True)
    module = lib / "mod_a.py"
    module.write_text(service_code("mod-a", "v1"))
    marker = tmp_path / "pwned"
    pyc = plant_bytecode(module, EVIL.format(marker=str(marker), name="mod-a"))
    clan = write_clan(tmp_path / "clan", CLAN.format(name="mod-a"))
    # the planted file is not part of the locked hash, so it must not be what runs
    assert open_clan(clan, {}).resolved.instances["foo"].service.description == "v1"
    assert not marker.exists() and pyc.read_bytes()  # left alone, never executed

    # a submodule imported later, from inside a role function: the same rule
    lazy = tmp_path / "lib" / "services" / "lazy"
    lazy.mkdir()
    (lazy / "__init__.py").write_text(LAZY_PACKAGE)
    (lazy / "later.py").write_text('TEXT = "from source"\n')
    plant_bytecode(lazy / "later.py", f'TEXT = "from bytecode"\nopen({str(marker)!r}, "w").write("pwned")\n')
    (clan / "clan.toml").write_text(CLAN.format(name="lazy"))
    assert run_pyclan("-C", str(clan), "inputs", "update", "local").code == 0
    config = open_clan(clan, {}).evaluator.config("jon")
    assert config.files["/etc/lazy"].content == "from source"
    assert not marker.exists()

    # bytecode without its source is never imported from an input
    (lazy / "later.py").unlink()
    bootstrap_pyc = lazy / "later.pyc"
    bootstrap_pyc.write_bytes(
        bootstrap._code_to_timestamp_pyc(compile('TEXT = "bytecode only"\n', "later.py", "exec"), 0, 0)  # type: ignore[attr-defined]
    )
    assert run_pyclan("-C", str(clan), "inputs", "update", "local").code == 0
    with pytest.raises(ClanError) as info:
        open_clan(clan, {}).evaluator.config("jon")
    assert "compiled bytecode without its source" in str(info.value)
    assert not marker.exists()


def test_item7_symlink_out_of_the_input_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = tmp_path / "pwned"
    (outside / "evil.py").write_text(EVIL.format(marker=str(marker), name="mod-a"))
    lib = tmp_path / "lib" / "services"
    lib.mkdir(parents=True)
    (lib / "mod_a.py").symlink_to(outside / "evil.py")
    clan = write_clan(tmp_path / "clan", CLAN.format(name="mod-a"))
    [problem] = resolve_problems(clan)
    assert (problem.kind, problem.path) == ("input-error", "inputs.local.path")
    assert "mod_a.py is a symlink to" in problem.message and "outside the input" in problem.message
    assert not marker.exists() and not (clan / "clan.lock").exists()  # nothing was locked or run
    update = run_pyclan("-C", str(clan), "inputs", "update", "local")
    assert update.code == 1 and "outside the input" in update.stderr and not (clan / "clan.lock").exists()

    # the services folder itself, and a folder symlink, are checked the same way
    (lib / "mod_a.py").unlink()
    (lib / "pkg").symlink_to(outside, target_is_directory=True)
    assert "pkg is a symlink to" in resolve_problems(clan)[0].message
    (lib / "pkg").unlink()
    (lib / "loop").symlink_to(lib, target_is_directory=True)
    assert "a loop" in resolve_problems(clan)[0].message
    (lib / "loop").unlink()

    # a link inside the input is hashed by what it points to: editing the target is a change
    shared = tmp_path / "lib" / "shared"
    shared.mkdir()
    (shared / "mod_a.py").write_text(service_code("mod-a", "v1"))
    (lib / "mod_a.py").symlink_to(Path("..") / "shared" / "mod_a.py")
    assert open_clan(clan, {}).resolved.instances["foo"].service.description == "v1"
    (shared / "mod_a.py").write_text(service_code("mod-a", "v2"))
    [problem] = resolve_problems(clan)
    assert problem.kind == "input-error" and "changed since it was locked" in problem.message


def test_item7_symlink_out_of_a_git_input_is_refused(tmp_path: Path, make_repo: MakeRepo) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text(service_code("mod-a", "not locked"))
    repo = make_repo("libstd")
    (repo.path / "services").mkdir()
    (repo.path / "services" / "mod_a.py").symlink_to(secret)
    repo.commit("a link to a file of the machine that fetches it")
    clan = write_clan(tmp_path / "clan", git_clan(repo.file_url))
    [problem] = resolve_problems(clan)
    assert (problem.kind, problem.path) == ("input-error", "inputs.local.url")
    assert "outside the input" in problem.message
    assert not (clan / "clan.lock").exists()


HOOKS = ("post-checkout", "post-index-change", "reference-transaction", "post-merge", "pre-auto-gc", "post-rewrite")


def _hooks(folder: Path, marker_dir: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for hook in HOOKS:
        path = folder / hook
        path.write_text(f"#!/bin/sh\ntouch '{marker_dir}/{hook}'\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def clear(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


def test_item7_git_input_hooks_do_not_run(tmp_path: Path, make_repo: MakeRepo, isolated_git: Path) -> None:
    repo = make_repo("libstd", {"mod_a": "mod-a"})
    clan = write_clan(tmp_path / "clan", git_clan(repo.file_url))
    fired = tmp_path / "fired"
    fired.mkdir()
    # hooks of the user's configuration (core.hooksPath) ...
    _hooks(tmp_path / "user-hooks", fired)
    with open(os.environ["GIT_CONFIG_GLOBAL"], "a") as config:
        config.write(f"[core]\n\thooksPath = {tmp_path / 'user-hooks'}\n")
    git(repo.path, "checkout", "-q", "-b", "probe")  # the hooks are live for plain git
    assert (fired / "post-checkout").exists()
    clear(fired)

    assert open_clan(clan, {}).resolved.instances["foo"].service.description == "v1"  # fetch + checkout
    assert sorted(p.name for p in fired.iterdir()) == []
    # ... and hooks planted in the cache repository
    [cache_repo] = list(isolated_git.glob("inputs/*/repo.git"))
    _hooks(cache_repo / "hooks", fired)
    repo.service("mod_a", "mod-a", "v2")
    repo.commit("v2")  # the test's own git commands do run the hooks
    clear(fired)
    update = run_pyclan("-C", str(clan), "inputs", "update")
    assert update.code == 0, update.stderr
    assert open_clan(clan, {}).resolved.instances["foo"].service.description == "v2"
    assert sorted(p.name for p in fired.iterdir()) == []
    assert json.loads((clan / "clan.lock").read_text())["inputs"]["local"]["rev"] == repo.head()
