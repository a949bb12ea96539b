"""Fetching git inputs into a per-user cache, outside every clan directory.

Layout under the cache root (`$PYCLAN_CACHE_DIR/inputs`, else `$XDG_CACHE_HOME/pyclan/inputs`,
else `~/.cache/pyclan/inputs`):

    <sha256 of the fetch URL>/
        repo.git/     a bare repository: every commit ever fetched from that URL
        <commit>/     a plain checkout of one commit (no .git), what service modules load from
        .lock         serialises concurrent pyclan processes on the same URL

A checkout is made once per commit and reused without network access; only `fetch()` talks to
the remote. Checkouts are written to a temporary folder and renamed into place, so a reader
never sees half a tree. All work is done by the `git` command-line tool, so the user's own git
configuration (credentials, SSH keys, proxies, `insteadOf` rewrites) applies — except hooks:
every git command runs with `core.hooksPath` set to an empty folder of this process and without
an fsmonitor, so no hook (in the cache repository, or in the user's configuration) ever runs
while pyclan fetches or checks out an input.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "PYCLAN_CACHE_DIR"
# Settings that make a checkout independent of the user's git configuration.
_CHECKOUT_CONFIG = ("-c", "core.autocrlf=false", "-c", "core.eol=lf", "-c", "core.symlinks=true")


class GitFailed(Exception):
    """A git command failed; `detail` is git's own message (its last stderr lines)."""

    def __init__(self, action: str, detail: str) -> None:
        self.action = action
        self.detail = detail
        super().__init__(f"{action}: {detail}")


@dataclass(frozen=True)
class FileChange:
    """One file changed between two commits (`git diff --stat`-like)."""

    path: str
    status: str  # A added, D deleted, M modified, T type changed
    added: int | None  # None for binary files
    deleted: int | None

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "status": self.status, "added": self.added, "deleted": self.deleted}


def cache_root() -> Path:
    """Where fetched inputs live; never inside a clan directory."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser() / "inputs"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pyclan" / "inputs"


_NO_HOOKS: Path | None = None


def no_hooks_dir() -> Path:
    """An empty folder only this process can write: git's hooks path for every input command."""
    global _NO_HOOKS
    if _NO_HOOKS is None or not _NO_HOOKS.is_dir():
        _NO_HOOKS = Path(tempfile.mkdtemp(prefix="pyclan-no-hooks-"))
        atexit.register(shutil.rmtree, _NO_HOOKS, True)
    return _NO_HOOKS


def _safety_config() -> tuple[str, ...]:
    """No hooks and no fsmonitor command, whatever the repository or the user configures."""
    return ("-c", f"core.hooksPath={no_hooks_dir()}", "-c", "core.fsmonitor=false")


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GIT_TERMINAL_PROMPT"] = "0"  # fail instead of waiting for a password nobody types
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    env.pop("GIT_INDEX_FILE", None)
    return env


class GitCache:
    """The cached clones and checkouts of one remote URL."""

    def __init__(self, fetch_url: str, root: Path | None = None) -> None:
        self.fetch_url = fetch_url
        self.dir = (root or cache_root()) / hashlib.sha256(fetch_url.encode()).hexdigest()
        self.repo = self.dir / "repo.git"

    # -- running git ---------------------------------------------------------------------------

    def _git(self, *args: str, action: str, env: dict[str, str] | None = None) -> str:
        try:
            proc = subprocess.run(
                ["git", *_safety_config(), f"--git-dir={self.repo}", *args],
                capture_output=True,
                text=True,
                env=env or _git_env(),
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise GitFailed(action, "the `git` command is not installed") from None
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            raise GitFailed(action, "\n".join(lines[-6:]) or f"git exited with status {proc.returncode}")
        return proc.stdout

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the per-URL lock (other pyclan processes wait) and make sure the repo exists."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if not (self.repo / "HEAD").is_file():
                    self.repo.mkdir(parents=True, exist_ok=True)
                    self._git("init", "--bare", "--quiet", action="creating the cache repository")
                    (self.dir / "url").write_text(self.fetch_url + "\n", encoding="utf-8")
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- commits -------------------------------------------------------------------------------

    def has_commit(self, commit: str) -> bool:
        if not (self.repo / "HEAD").is_file():
            return False
        try:
            self._git("cat-file", "-e", f"{commit}^{{commit}}", action="looking up a commit")
        except GitFailed:
            return False
        return True

    def _keep(self, commit: str) -> None:
        """A ref per fetched commit, so that `git gc` never drops a commit a lock names."""
        self._git("update-ref", f"refs/pyclan/commits/{commit}", commit, action="recording a commit")

    def fetch(self, wanted: str) -> str:
        """Fetch a branch, tag, `HEAD` or commit id from the remote; return the commit (network)."""
        with self.locked():
            try:
                self._git(
                    "fetch", "--force", "--no-tags", "--quiet", "--", self.fetch_url, wanted,
                    action=f"fetching '{wanted}' from {self.fetch_url}",
                )  # fmt: skip
                commit = self._git(
                    "rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}", action="reading FETCH_HEAD"
                ).strip()
            except GitFailed:
                if not _is_commit_id(wanted):
                    raise
                # servers that refuse to send an unadvertised commit: fetch every branch and tag
                self._git(
                    "fetch", "--force", "--quiet", "--", self.fetch_url,
                    "+refs/heads/*:refs/pyclan/heads/*", "+refs/tags/*:refs/pyclan/tags/*",
                    action=f"fetching all branches and tags from {self.fetch_url}",
                )  # fmt: skip
                if not self.has_commit(wanted):
                    raise GitFailed(
                        f"fetching commit {wanted} from {self.fetch_url}",
                        "no branch or tag of the remote contains this commit",
                    ) from None
                commit = wanted
            self._keep(commit)
            return commit

    def ensure_commit(self, commit: str) -> None:
        """Make the commit available locally, fetching it only when the cache lacks it."""
        if not self.has_commit(commit):
            self.fetch(commit)

    # -- checkouts -----------------------------------------------------------------------------

    def checkout_dir(self, commit: str) -> Path:
        return self.dir / commit

    def checkout(self, commit: str, *, fresh: bool = False) -> Path:
        """The folder holding `commit`'s files, created from the local repository if needed."""
        target = self.checkout_dir(commit)
        if target.is_dir() and not fresh:
            return target
        self.ensure_commit(commit)
        with self.locked():
            if target.is_dir() and not fresh:
                return target
            tmp = self.dir / f".{commit}.tmp-{os.getpid()}"
            index = self.dir / f".index.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            env = _git_env()
            env["GIT_INDEX_FILE"] = str(index)
            try:
                self._git("read-tree", commit, action=f"reading commit {commit}", env=env)
                self._git(
                    *_CHECKOUT_CONFIG, f"--work-tree={tmp}", "checkout-index", "--all", "--force",
                    action=f"checking out commit {commit}", env=env,
                )  # fmt: skip
                if target.exists():
                    shutil.rmtree(target)
                tmp.rename(target)
            finally:
                index.unlink(missing_ok=True)
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    # -- what changed --------------------------------------------------------------------------

    def diff(self, old: str, new: str) -> list[FileChange]:
        """Files changed from `old` to `new` (both must be in the local repository)."""
        statuses = self._git(
            "diff", "--no-renames", "--name-status", "-z", old, new, action="comparing commits"
        ).split("\0")
        numstat = self._git("diff", "--no-renames", "--numstat", "-z", old, new, action="comparing commits")
        counts: dict[str, tuple[int | None, int | None]] = {}
        for record in numstat.split("\0"):
            added, _, rest = record.partition("\t")
            deleted, _, path = rest.partition("\t")
            if path:
                counts[path] = (
                    int(added) if added.isdigit() else None,
                    int(deleted) if deleted.isdigit() else None,
                )
        changes: list[FileChange] = []
        for status, path in zip(statuses[0::2], statuses[1::2], strict=False):
            if path:
                added_n, deleted_n = counts.get(path, (None, None))
                changes.append(FileChange(path, status[:1], added_n, deleted_n))
        return sorted(changes, key=lambda c: c.path)

    def log(self, old: str, new: str, limit: int = 30) -> list[str]:
        """`<short commit> <subject>` of the commits in `new` that are not in `old`."""
        out = self._git(
            "log", f"--max-count={limit}", "--format=%h %s", f"{old}..{new}", action="listing commits"
        )
        return [line for line in out.splitlines() if line]


def _is_commit_id(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)
