"""One writer at a time per clan: an advisory lock on `<clan>/.pyclan/lock`.

Every command that changes the clan folder (vars generate/set/import, machines create/delete,
machines update/install when they generate vars, inventory writes, inputs update) holds the
lock for its whole read-modify-write, so two commands run at once end as if run one after the
other. A second writer waits, saying so on stderr, or with `--no-wait` fails at once. The lock
is `flock(2)`: the kernel releases it when its holder exits, even by SIGKILL, so a killed run
never leaves a stale lock. Readers (`vars check`, `build`, `list`) do not take it.

`.pyclan/` holds only local state (this lock); it must not be committed: the clan's
`.gitignore` lists it (`pyclan init` writes that line).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from pyclan import safepath
from pyclan.errors import ClanError

LOCAL_DIR = ".pyclan"
LOCK_FILE = "lock"
NO_WAIT_HINT = "wait for the other command to finish, or run again without --no-wait to wait for it"

# Reentrant per thread, not per process: flock locks belong to an open file description, so two
# threads (tasks of `pyclan serve`) that each open the lock file exclude each other like processes.
_local = threading.local()
_wait_default = True


def set_default_wait(wait: bool) -> None:
    """What `clan_lock(..., wait=None)` does when the clan is busy (the CLI's `--no-wait`)."""
    global _wait_default
    _wait_default = wait


def lock_path(clan_dir: Path) -> Path:
    return clan_dir / LOCAL_DIR / LOCK_FILE


def _read_only(root: Path) -> bool:
    try:
        return bool(os.statvfs(root).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text
    return "another pyclan command"


@contextlib.contextmanager
def clan_lock(clan_dir: Path, what: str = "pyclan", wait: bool | None = None) -> Iterator[None]:
    """Hold the clan's write lock; `what` names this command in the other one's message."""
    root = clan_dir.resolve()
    _held: dict[Path, int] = _local.__dict__.setdefault("held", {})  # clan dir → nesting depth
    if root in _held:
        _held[root] += 1
        try:
            yield
        finally:
            _held[root] -= 1
        return
    wait = _wait_default if wait is None else wait
    path = lock_path(root)
    if _read_only(root):  # nobody can change it: nothing to exclude (deploying from a read-only checkout)
        yield
        return
    safepath.make_dirs(root, path.parent, 0o700, kind="usage-error")
    safepath.check(root, path, kind="usage-error")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise safepath.os_error(root, path, exc, "open the clan's lock file", kind="usage-error") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = _holder(fd)
            if not wait:
                raise ClanError.single(
                    "usage-error", str(path.relative_to(root)),
                    f"the clan is being changed by {holder}; not waiting (--no-wait)", hint=NO_WAIT_HINT,
                ) from None
            sys.stderr.write(f"waiting for {holder} to finish changing the clan ({path})…\n")
            sys.stderr.flush()
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"`{what}` (pid {os.getpid()})\n".encode(), 0)
        _held[root] = 1
        try:
            yield
        finally:
            del _held[root]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
