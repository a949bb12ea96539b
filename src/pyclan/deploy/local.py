"""`LocalConnection`: deploy's host protocol against a private root on this machine, for fast tests.

The same scripts as over SSH (probe, apply with its tar on stdin, confirm, find, the activation
itself) run as root inside a `pyclan.hosts.private_root.PrivateRoot`, one per machine, so the
update, rollback, removal and crash paths are exercised for real in a fraction of a second,
without booting a host. `PrivateRoots.connect` is a `Connector`: pass it as
`UpdateOptions.connector` (or `connector=` of `status`, `generations`, …).

What a private root supports: files, links, secrets, users, groups, passwords, hooks, health
checks of kind `command`/`tcp`/`udp`, generations, rollback, magic rollback (the host-side timer
is the detached sleeper the scripts use wherever systemd is not booted), the deploy lock and the
journal. What it does not: systemd units (there is no booted systemd inside, so the activation
refuses a generation with units in its preflight, as it would on such a host) and packages (no
network, no apt). Those are the real-host tests' (`tests/hosts/`, systemd-nspawn).

`refuse(machine)` makes new connections to a machine fail as an unreachable host would, while
connections already open keep working — as sshd keeps established sessions — so the magic
rollback's "unreachable after activation" path has a fast test too.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path
from typing import Any

from pyclan.build.layout import HOST_ROOT
from pyclan.deploy.connection import CommandResult, Connection
from pyclan.deploy.transport import HostKeyCheck, Target
from pyclan.errors import ClanError
from pyclan.hosts.private_root import PrivateRoot


def _error(target: Target, message: str, hint: str | None = None) -> ClanError:
    return ClanError.single("deploy-error", f"machines.{target.machine}", message, hint=hint)


class _Answer(asyncio.SubprocessProtocol):
    """What a command in the root printed; `finished` once it exited and closed its output."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.finished: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        chunk = data.encode() if isinstance(data, str) else data
        (self.stdout if fd == 1 else self.stderr).extend(chunk)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


class LocalConnection:
    """A `pyclan.deploy.connection.Connection` whose host is a private root."""

    def __init__(self, root: PrivateRoot, target: Target) -> None:
        self.root = root
        self.target = target

    async def run(
        self, script: str, *args: str, input: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        loop = asyncio.get_running_loop()
        transport, answer = await loop.subprocess_exec(
            lambda: _Answer(loop), *self.root.command(["sh", "-c", script, "pyclan", *args]),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=dict(self.root.env), start_new_session=True,
        )
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        stdin.write(input or b"")
        stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(answer.finished), timeout)
        except TimeoutError:
            # like a dropped SSH session: our ends of the pipes close, the command goes on inside the root
            transport.close()
            raise _error(self.target, f"a command on {self.target} did not finish within {timeout:.0f} s") from None
        code = transport.get_returncode()
        transport.close()
        status = code if code is not None and code >= 0 else 255
        return CommandResult(status, bytes(answer.stdout), bytes(answer.stderr))

    async def stream(self, command: str) -> int:
        stdin: Any = asyncio.subprocess.DEVNULL
        try:
            mode = os.fstat(sys.stdin.fileno()).st_mode
        except (OSError, ValueError):
            mode = 0
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISREG(mode):
            stdin = None  # inherited
        sys.stdout.flush()
        proc = await asyncio.create_subprocess_exec(*self.root.command(["sh", "-c", command]), stdin=stdin,
                                                    env=dict(self.root.env), start_new_session=True)
        status = await proc.wait()
        return status if status >= 0 else 255

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> LocalConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class PrivateRoots:
    """One private root per machine below `directory`, started on first use; `connect` opens one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.roots: dict[str, PrivateRoot] = {}
        self.refused: set[str] = set()

    def root(self, machine: str) -> PrivateRoot:
        if machine not in self.roots:
            self.roots[machine] = PrivateRoot(self.directory / machine, machine, fresh=[HOST_ROOT]).start()
        return self.roots[machine]

    def refuse(self, machine: str, refused: bool = True) -> None:
        """New connections to `machine` fail (or, with `refused=False`, work again)."""
        (self.refused.add if refused else self.refused.discard)(machine)

    async def connect(self, target: Target, check: HostKeyCheck, timeout: float) -> Connection:
        """A `Connector` (host-key checking and the timeout have no meaning here)."""
        if target.machine in self.refused:
            raise _error(target, f"cannot connect to {target}: connection refused (private root set to refuse)")
        return LocalConnection(self.root(target.machine), target)

    def stop(self) -> None:
        for root in self.roots.values():
            root.stop()
        self.roots.clear()

    def __enter__(self) -> PrivateRoots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
