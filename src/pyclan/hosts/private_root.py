"""A private root on this machine: a host-like place where an activation runs for real, in seconds.

The technique of the service tests' `isolated` fixture, kept alive for a whole test: one set of
namespaces (mount, PID, UTS, network) held open by a small init process, which every command
enters with `nsenter`. Inside, /etc, /usr, /var, /srv, /home and /opt are copy-on-write overlays
of this machine's (their changes land in `<dir>/upper/`), /run, /tmp and /root are empty tmpfs,
each path of `fresh` (deploy's /var/lib/pyclan) starts empty and lives in `<dir>/fresh/`, and each
of `tmpfs` is empty at every start.
So `useradd`, `install`, `ln`, `flock`, `setsid` and hooks run unmodified without touching this
machine, state persists from one command to the next as on a host, and the processes of the
root (a detached sleeper included) all end with it: they are in its PID namespace.

What it is not: a booted system. /run/systemd/system does not exist inside, so scripts that ask
"is systemd running?" (the activation, `[ -d /run/systemd/system ]`) hear no — there is no
systemctl to talk to. The network namespace has only `lo`; nothing can be installed with apt.

Needs root (namespaces and mounts) and util-linux's `unshare`/`nsenter`. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyclan.errors import ClanError

OVERLAID = ("/etc", "/usr", "/var", "/srv", "/home", "/opt")
EMPTY = {"/run": "0755", "/tmp": "1777", "/root": "0700"}
#: the environment commands start with (what sshd gives a root login, roughly)
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LC_ALL": "C",
       "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh"}

# PID 1 of the root: mounts (as a script), says it is ready and with which PID on this machine, then
# reaps orphans (a killed activation's children, detached sleepers) until the root is stopped.
_INIT = r"""
import os, signal, subprocess, sys
pid = os.readlink("/proc/self")  # this machine's /proc is still mounted: our PID out there
subprocess.run(["sh", "-euc", sys.argv[1]], check=True, stdout=sys.stderr)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
print("ready", pid, flush=True)
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    signal.sigtimedwait({signal.SIGCHLD}, 5)
"""


def _error(name: str, message: str, hint: str | None = None) -> ClanError:
    return ClanError.single("deploy-error", f"machines.{name}", message, hint=hint)


class PrivateRoot:
    """The namespaces of one private root (see the module docstring); `start` before use."""

    def __init__(self, directory: Path, name: str, fresh: Sequence[str] = (), tmpfs: Sequence[str] = (),
                 share_tmp: bool = False) -> None:
        self.directory = directory
        self.name = name
        self.fresh = tuple(fresh)  # empty at first, kept in `directory` (outlives the root)
        self.tmpfs = tuple(tmpfs)  # empty at every start, like /run
        self.share_tmp = share_tmp  # /tmp stays this machine's (a test hands files in through it)
        self._init: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None  # of the init process, as this machine sees it

    def _mounts(self) -> str:
        d = self.directory
        q = shlex.quote
        lines: list[str] = []
        for path in OVERLAID:
            if not os.path.isdir(path):
                continue
            upper, work = d / "upper" / path[1:], d / "work" / path[1:]
            lines.append(f"mkdir -p {q(str(upper))} {q(str(work))}")
            lines.append(f"mount -t overlay overlay -o lowerdir={path},upperdir={q(str(upper))},"
                         f"workdir={q(str(work))} {path}")
        for path in self.tmpfs:
            lines.append(f"mkdir -p {q(path)} && mount -t tmpfs -o mode=0755 tmpfs {q(path)}")
        for i, path in enumerate(self.fresh):  # before /tmp is hidden: the sources may be below it
            source = d / "fresh" / str(i)
            lines.append(f"mkdir -p {q(str(source))} {q(path)} && mount --bind {q(str(source))} {q(path)}")
        for path, mode in EMPTY.items():
            if not (path == "/tmp" and self.share_tmp):
                lines.append(f"mount -t tmpfs -o mode={mode} tmpfs {path}")
        lines.append("mount -t proc proc /proc")
        lines.append("ip link set lo up 2>/dev/null || true")
        lines.append(f"hostname {q(self.name)}")
        return "\n".join(lines)

    def start(self) -> PrivateRoot:
        if os.geteuid() != 0:
            raise _error(self.name, f"a private root needs root: it creates namespaces and mounts "
                                    f"(running as uid {os.geteuid()})", hint="run the tests as root, as CI does")
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "init.log", "wb")  # noqa: SIM115 - the init process keeps it
        with log:
            self._init = subprocess.Popen(
                ["unshare", "--mount", "--uts", "--net", "--pid", "--fork", "--kill-child", "--propagation", "private",
                 "--", sys.executable, "-c", _INIT, self._mounts()],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, env=dict(ENV),
            )
        assert self._init.stdout is not None
        line = self._init.stdout.readline().split()
        self._init.stdout.close()
        if len(line) != 2 or line[0] != b"ready":
            self.stop()
            detail = (self.directory / "init.log").read_text(errors="replace").strip()
            raise _error(self.name, f"the private root in {self.directory} could not be set up: {detail[-2000:]}")
        self.pid = int(line[1])
        return self

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside, as root, as the leader of a session of its own (as sshd starts one)."""
        if self.pid is None:
            raise _error(self.name, "the private root is not running")
        return ["nsenter", f"--target={self.pid}", "--mount", "--uts", "--net", "--pid", "--",
                "setsid", "--wait", *argv]

    @property
    def env(self) -> Mapping[str, str]:
        return ENV

    def run(self, script: str, *, input: bytes | None = None, check: bool = True,
            timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        """`script` with /bin/sh inside (for tests: read files, watch an activation)."""
        done = subprocess.run(self.command(["sh", "-c", script]), input=(input or b""), capture_output=True,
                              env=dict(ENV), timeout=timeout, check=False)
        out = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(errors="replace"),
                                          done.stderr.decode(errors="replace"))
        if check and done.returncode != 0:
            raise _error(self.name, f"a script in the private root exited {done.returncode}:\n{out.stdout}{out.stderr}")
        return out

    def popen(self, script: str) -> subprocess.Popen[str]:
        """`script` inside, in the background (its stdout and stderr on one pipe)."""
        return subprocess.Popen(self.command(["sh", "-c", script]), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(ENV))

    def stop(self) -> None:
        """End every process of the root; its mounts go with them (the files in `directory` stay)."""
        if self._init is not None:
            with contextlib.suppress(ProcessLookupError):
                self._init.kill()  # --kill-child: its child, PID 1 inside, gets SIGKILL, and with it everyone
            self._init.wait()
            self._init = None
        self.pid = None

    def __enter__(self) -> PrivateRoot:
        return self.start() if self.pid is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
