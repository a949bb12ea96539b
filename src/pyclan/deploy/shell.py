"""`pyclan ssh`: a shell or one command on a machine, with deploy's target and host-key rules.

One command runs over asyncssh (its output streamed, its exit status returned); an
interactive shell is handed to OpenSSH's `ssh`, which owns the terminal best, with options
that mirror the same target, key and host-key checking.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from pyclan.build.layout import cache_dir
from pyclan.deploy.connection import Connector, ssh
from pyclan.deploy.transport import CONNECT_TIMEOUT, HostKeyCheck, Target, check_target
from pyclan.errors import ClanError

_STRICT = {
    HostKeyCheck.STRICT: "yes",
    HostKeyCheck.ASK: "ask",
    HostKeyCheck.TOFU: "accept-new",
    HostKeyCheck.NONE: "no",
}


def openssh_argv(target: Target, check: HostKeyCheck, command: list[str] | None = None) -> list[str]:
    """The `ssh` command line equivalent to how deploy connects to `target`."""
    ssh = shutil.which("ssh")
    if ssh is None:
        raise ClanError.single(
            "deploy-error", "ssh", "an interactive shell needs OpenSSH's `ssh`, which is not installed",
            hint="install openssh-client, or run one command with `pyclan ssh MACHINE -c CMD`",
        )
    argv = [ssh]
    if not target.ssh_config:
        argv += ["-F", "/dev/null"]
    if target.identity is not None:
        argv += ["-i", str(target.identity), "-o", "IdentitiesOnly=yes"]
    files = [str(target.known_hosts)] if target.known_hosts is not None else []
    if target.host_keys:
        files = files or [str(Path("~/.ssh/known_hosts").expanduser())]
        files.append(str(_clan_known_hosts(target)))
    if files:
        argv += ["-o", "UserKnownHostsFile=" + " ".join(files)]
    if check is HostKeyCheck.NONE:
        argv += ["-o", "UserKnownHostsFile=/dev/null"]
    argv += ["-o", f"StrictHostKeyChecking={_STRICT[check]}"]
    if target.port:
        argv += ["-p", str(target.port)]
    if target.jump:
        argv += ["-J", target.jump]
    check_target(target)
    # `--` ends ssh's options: nothing after it (destination, command) is ever read as one
    argv += ["--", f"{target.user}@{target.host}" if target.user else target.host]
    if command:
        argv += command
    return argv


def _clan_known_hosts(target: Target) -> Path:
    """A known_hosts file with the clan's own host keys of the machine, for OpenSSH."""
    path = cache_dir() / "known_hosts" / target.machine
    path.parent.mkdir(parents=True, exist_ok=True)
    names = target.host if not target.port or target.port == 22 else f"[{target.host}]:{target.port}"
    path.write_text("".join(f"{names} {key}\n" for key in target.host_keys))
    return path


async def _run(target: Target, check: HostKeyCheck, command: str, connector: Connector) -> int:
    async with await connector(target, check, CONNECT_TIMEOUT) as conn:
        return await conn.stream(command)


def run_command(target: Target, check: HostKeyCheck, command: str, connector: Connector = ssh) -> int:
    """Run `command` on the target with this terminal's stdio; returns its exit status."""
    return asyncio.run(_run(target, check, command, connector))
