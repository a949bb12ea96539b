"""The seam between deploy and a host: what deploy needs of a connection, and who opens one.

Everything deploy does on a host goes through `Connection.run` (a POSIX-sh script as root, with
bytes on stdin — the upload — and bytes back on stdout) and `Connection.stream` (an interactive
command for `pyclan machines ssh`/`run`). Two implementations exist:

- `pyclan.deploy.transport.SshConnection`: asyncssh, honouring the user's OpenSSH config, agent
  and known_hosts — what every command uses;
- `pyclan.deploy.local.LocalConnection`: the same scripts in a private root on this machine
  (`pyclan.hosts.private_root`), so the activation's update, rollback, removal and crash paths
  have fast tests without booting a host.

A `Connector` opens connections; deploy functions take one (default `ssh`), so tests can hand
them the local one. This module imports no SSH library: naming the seam costs nothing at start-up.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyclan.deploy.transport import HostKeyCheck, Target


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def error_text(self) -> str:
        return self.stderr.decode(errors="replace").strip()


class Connection(Protocol):
    """One open connection to a host, on which commands run as root."""

    target: Target  # the machine and address this connection reaches (names it in every error)

    async def run(
        self, script: str, *args: str, input: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        """`sh -c SCRIPT pyclan ARGS…` as root, `input` on stdin; a broken connection or the
        `timeout` raises a ClanError (the command itself may go on running on the host)."""
        ...

    async def stream(self, command: str) -> int:
        """Run `command` with this process's stdout/stderr (and stdin if piped); its exit status."""
        ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Connection: ...

    async def __aexit__(self, *exc: object) -> None: ...


class Connector(Protocol):
    """Opens a connection to `target` (a ClanError says why it could not)."""

    def __call__(self, target: Target, check: HostKeyCheck, timeout: float) -> Awaitable[Connection]: ...


async def ssh(target: Target, check: HostKeyCheck, timeout: float) -> Connection:
    """The default connector: asyncssh, imported only when a connection is made."""
    from pyclan.deploy.transport import connect

    return await connect(target, check, timeout)
