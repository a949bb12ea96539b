"""The machine-side primitives local hosts need: commands, processes, cgroups, mounts, files.

Kept apart from the host logic so that each helper is small, testable and obviously safe:
nothing here removes a directory that still has a mount under it, and processes are
identified by pid *and* start time so that a reused pid is never killed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from pyclan.errors import ClanError

#: tool -> the Debian package that brings it
TOOLS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "apt-cacher-ng": "apt-cacher-ng",
}


def deploy_error(path: str, message: str, hint: str | None = None) -> ClanError:
    return ClanError.single("deploy-error", path, message, hint=hint)


# --- checks ----------------------------------------------------------------------------------
def require_root(uid: int | None = None) -> None:
    """Hosts need namespaces, mounts and cgroups: only root can make them."""
    uid = os.geteuid() if uid is None else uid
    if uid != 0:
        raise deploy_error(
            "hosts",
            f"pyclan hosts needs root: it creates network namespaces, mounts and cgroups (running as uid {uid})",
            hint="run it with sudo, or as root in CI",
        )


def find_tool(tool: str) -> str | None:
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(tool, path=path)


def require_tools(tools: Sequence[str] = tuple(TOOLS)) -> dict[str, str]:
    """Return tool -> path; a missing tool names the apt packages to install."""
    found = {t: find_tool(t) for t in tools}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        packages = sorted({TOOLS.get(t, t) for t in missing})
        raise deploy_error(
            "hosts",
            f"missing tools for local hosts: {', '.join(missing)}",
            hint="install them with: apt-get install --no-install-recommends " + " ".join(packages),
        )
    return {t: p for t, p in found.items() if p is not None}


# --- commands --------------------------------------------------------------------------------
def run(
    args: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 60,
    what: str = "hosts",
) -> subprocess.CompletedProcess[str]:
    """Run a command quietly; a failure becomes a ClanError with its stderr."""
    try:
        proc = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise deploy_error(what, f"{args[0]} failed: {exc}") from None
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise deploy_error(what, f"`{' '.join(args)}` exited with {proc.returncode}: {detail}")
    return proc


# --- processes -------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Kernel start time of a pid (clock ticks since boot); None if gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int | None, started: int | None) -> bool:
    """True if `pid` is still the process that was started at `started`."""
    if not pid:
        return False
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def reap(pid: int) -> None:
    """Collect a child we started ourselves, so it does not stay a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_gone(pids: dict[int, int | None], timeout: float) -> dict[int, int | None]:
    """Wait until the processes are gone; return the ones still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    left = dict(pids)
    while left:
        for pid in list(left):
            reap(pid)
            if not alive(pid, left[pid]):
                del left[pid]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return left


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def port_open(address: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- cgroups ---------------------------------------------------------------------------------
def cgroup_mounts() -> list[Path]:
    """The hierarchies systemd uses: every cgroup2 mount and a v1 `name=systemd` one."""
    out: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _src, *opts = right.split()
        target = Path(_unescape(left.split()[4]))
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in opts[0].split(",")):
            out.append(target)
    return out


def cgroup_dirs(rel: str) -> list[Path]:
    """`rel` inside every hierarchy from `cgroup_mounts()` that has it."""
    return [m / rel for m in cgroup_mounts() if (m / rel).is_dir()]


def cgroup_pids(rel: str) -> set[int]:
    """Every process in cgroup `rel` or below, in any hierarchy."""
    pids: set[int] = set()
    for top in cgroup_dirs(rel):
        for d, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in Path(d, "cgroup.procs").read_text().split())
    return pids


def kill_cgroup(rel: str) -> None:
    """SIGKILL everything in cgroup `rel` (cgroup.kill where the kernel has it)."""
    for top in cgroup_dirs(rel):
        with contextlib.suppress(OSError):
            (top / "cgroup.kill").write_text("1")
    for pid in cgroup_pids(rel):
        kill(pid)


def remove_cgroup(rel: str, timeout: float = 5.0) -> None:
    """Remove cgroup `rel` and its children bottom-up (retrying while they drain)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = False
        for top in cgroup_dirs(rel):
            for d, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    busy = True
        if not busy or time.monotonic() >= deadline:
            return
        kill_cgroup(rel)
        time.sleep(0.05)


def remove_empty_cgroup_parents(rel: str) -> None:
    """Remove `rel` and its parents in each hierarchy if nothing else uses them."""
    parts = rel.split("/")
    for m in cgroup_mounts():
        for i in range(len(parts), 0, -1):
            try:
                os.rmdir(m / "/".join(parts[:i]))
            except OSError:
                break


# --- mounts ----------------------------------------------------------------------------------
def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path` in our mount namespace, deepest first."""
    root = str(path.resolve()) if path.exists() else str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = _unescape(line.split()[4])
        if target == root or target.startswith(root.rstrip("/") + "/"):
            found.append(Path(target))
    return sorted(found, key=lambda p: -len(str(p)))


def remove_tree(path: Path) -> None:
    """`rm -rf` that first detaches mounts below it (a crashed debootstrap leaves /proc, /sys…).

    Refuses to delete anything while a mount remains, so it can never reach into the
    machine's own /proc, /sys or /dev through a leftover bind mount.
    """
    if not path.exists() and not path.is_symlink():
        return
    for mnt in mounts_under(path):
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
    left = mounts_under(path)
    if left:
        raise deploy_error(str(path), f"cannot remove {path}: still mounted: {left[0]}")
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        shutil.rmtree(path)  # second try to surface the error


# --- files -----------------------------------------------------------------------------------
def atomic_write(path: Path, data: str, mode: int = 0o644) -> None:
    """Write a whole file or nothing: write a temp file next to it, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive lock between processes working on the same state (flock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
