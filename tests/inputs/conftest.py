"""Fixtures for inputs tests: isolated git settings and cache, repositories, a real `git daemon`."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from git_repos import GitDaemon, MakeRepo, Repo, free_port, git


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Author identity, no user/system git config, and a cache folder per test."""
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test Author")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.org")
    cache = tmp_path / "cache"
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """`make_repo("libstd", {"mod_A": "mod-A"})`: a repo on branch main with one commit."""

    def make(name: str, services: dict[str, str] | None = None, marker: str = "v1", base: Path | None = None) -> Repo:
        path = (base or tmp_path / "repos") / name
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        repo = Repo(path)
        for stem, service_name in (services or {}).items():
            repo.service(stem, service_name, marker)
        repo.write("README.md", f"# {name}\n")
        repo.commit("initial")
        return repo

    return make


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    """A real `git daemon` serving every repository under a folder over git://."""
    base = tmp_path / "served"
    base.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            "git", "daemon", "--export-all", f"--base-path={base}", "--listen=127.0.0.1",
            f"--port={port}", "--reuseaddr", "--informative-errors", str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"git daemon did not start: {err}") from None
                time.sleep(0.05)
        yield GitDaemon(base, port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
