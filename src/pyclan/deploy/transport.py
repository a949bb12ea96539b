"""SSH transport: one asyncssh connection per host, reused for every command.

The real implementation of `pyclan.deploy.connection.Connection` (`SshConnection`); the
other one, `pyclan.deploy.local`, exists for fast tests.

OpenSSH habits keep working: `~/.ssh/config` (Host, HostName, User, Port, IdentityFile,
ProxyJump, UserKnownHostsFile), the agent and known_hosts are read by asyncssh. Host keys are
checked strictly by default; `--host-key-check` takes Clan's values: `strict` (the key must be
known), `ask` (prompt for an unknown key on a terminal), `tofu` (trust and remember an unknown
key; a *changed* key still fails), `none` (no checking). Commands run as root: directly when
logged in as root, else through `sudo -n`. Every failure becomes a ClanError that names the
host, says what went wrong and how to fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import shlex
import stat
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import asyncssh

# re-exported: code that imported them from here keeps working (`Connection` is the protocol now)
from pyclan.deploy.connection import CommandResult as CommandResult
from pyclan.deploy.connection import Connection as Connection
from pyclan.errors import ClanError
from pyclan.inventory.target_host import SYNTAX_HINT, destination_problem, jump_hosts_problem, word_problem

CONNECT_TIMEOUT = 10.0


class HostKeyCheck(StrEnum):
    STRICT = "strict"
    ASK = "ask"
    TOFU = "tofu"
    NONE = "none"


@dataclass(frozen=True)
class Target:
    """Where a machine is reached, and how (from --target-host, local hosts or the inventory)."""

    machine: str
    host: str
    user: str | None = None
    port: int | None = None
    source: str = "--target-host"
    identity: Path | None = None  # only this key (local hosts); None: agent and ssh config
    known_hosts: Path | None = None  # this file only (local hosts); None: the user's files
    ssh_config: bool = True  # read ~/.ssh/config
    jump: str | None = None  # jump hosts, `[user@]host[:port]`, comma-separated (ssh -J)
    host_keys: tuple[str, ...] = ()  # keys the clan itself declares for the machine (trusted like known_hosts)
    #: (message, hint) when nothing answers at the address: a local host whose process runs, not
    #: probed beforehand (its only route), says so as the probe would have
    silent: tuple[str, str] | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}"


_TARGET_RE = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:@\s\[\]]+))(?::(?P<port>\d+))?$")


def parse_target(spec: str, machine: str, source: str, *, path: str | None = None) -> Target:
    """`[user@]host[:port]` (IPv6 as `[addr]:port`), as Clan's `targetHost` is spelt.

    `path` is where the spec came from, for errors (default: `--target-host`, or the machine's
    `deploy.targetHost`). A user or host that ssh would read as an option is refused.
    """
    where = path or (f"machines.{machine}.deploy.targetHost" if source != "--target-host" else "--target-host")
    text = spec.strip()
    text = text.split("?", 1)[0]  # Clan allows `?option=value` suffixes; they have no meaning here
    m = _TARGET_RE.match(text)
    if not m:
        raise ClanError.single(
            "deploy-error", where,
            f"cannot read target host {spec!r}", hint="write it as [user@]host[:port], e.g. root@192.0.2.1:22",
        )
    unsafe = destination_problem(spec.strip())
    if unsafe is not None:
        raise ClanError.single("deploy-error", where, f"unsafe target host: {unsafe}", hint=SYNTAX_HINT)
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ClanError.single("deploy-error", where, f"port {port} of {spec!r} is out of range")
    return Target(machine=machine, host=m["v6"] or m["host"], user=m["user"], port=port, source=source)


def target_problem(target: Target) -> str | None:
    """Why `target` must not reach ssh (a user, host or jump host read as an option), or None."""
    problem = word_problem(target.host, "host")
    if problem is None and target.user is not None:
        problem = word_problem(target.user, "user")
    if problem is None and target.jump is not None:
        problem = jump_hosts_problem(target.jump)
    return problem


def check_target(target: Target) -> None:
    """Refuse a target whose parts ssh would read as options, whatever built it."""
    problem = target_problem(target)
    if problem is not None:
        raise _error(target, f"unsafe target ({target.source}): {problem}", hint=SYNTAX_HINT)


def _error(target: Target, message: str, hint: str | None = None) -> ClanError:
    return ClanError.single("deploy-error", f"machines.{target.machine}", message, hint=hint)


def _known_hosts_files(target: Target) -> list[Path]:
    if target.known_hosts is not None:
        return [target.known_hosts]
    return [Path("~/.ssh/known_hosts").expanduser()]


class KnownHostsCache:
    """known_hosts files parsed once per command, not once per connection.

    asyncssh parses a known_hosts file given by path for every connection: with N hosts and N
    keys that is quadratic (100 hosts: ~0.45 s CPU). Here a file is read on every use (cheap),
    and parsed again only when its bytes differ from the last parse, so an appended (tofu) or
    edited file is seen by the very next connection, exactly as before.
    """

    def __init__(self) -> None:
        self._parsed: dict[Path, tuple[bytes, asyncssh.SSHKnownHosts]] = {}
        self.parses = 0  # how many times a file was parsed (read by tests and benchmarks)

    def get(self, path: Path) -> asyncssh.SSHKnownHosts | None:
        """`path` parsed, or None if it cannot be read or parsed (the caller then passes the path
        to asyncssh, which reports the problem as it always did)."""
        try:
            data = path.read_bytes()
        except OSError:
            return None
        held = self._parsed.get(path)
        if held is not None and held[0] == data:
            return held[1]
        try:
            parsed = asyncssh.import_known_hosts(data.decode())
        except (ValueError, asyncssh.Error):
            return None
        self.parses += 1
        self._parsed[path] = (data, parsed)
        return parsed

    def forget(self, path: Path) -> None:
        self._parsed.pop(path, None)


KNOWN_HOSTS = KnownHostsCache()


@dataclass
class _Verdict:
    """Why a host key was refused (filled by the client callback, read after the failure)."""

    reason: str = ""  # "unknown", "changed" or "declined"
    fingerprint: str = ""
    files: list[Path] = field(default_factory=list)


class _Client(asyncssh.SSHClient):
    """Decides about host keys that known_hosts does not trust (asyncssh asks only for those)."""

    def __init__(self, target: Target, check: HostKeyCheck, verdict: _Verdict) -> None:
        self.target = target
        self.check = check
        self.verdict = verdict

    def validate_host_public_key(self, host: str, addr: tuple[str, int] | str, port: int, key: asyncssh.SSHKey) -> bool:
        address = addr[0] if isinstance(addr, tuple) else addr
        offered = key.export_public_key("openssh").decode().split()[:2]
        if any(k.split()[:2] == offered for k in self.target.host_keys):
            return True  # the machine's own host key from the clan's vars (deployed by sshd)
        files = [f for f in _known_hosts_files(self.target) if f.is_file()]
        self.verdict.files = _known_hosts_files(self.target)
        self.verdict.fingerprint = key.get_fingerprint()
        for file in files:
            known = KNOWN_HOSTS.get(file) or asyncssh.read_known_hosts(str(file))
            if known.match(host, address, port if port != 22 else None)[0]:
                self.verdict.reason = "changed"
                return False
        self.verdict.reason = "unknown"
        if self.check is HostKeyCheck.TOFU:
            _remember(self.verdict.files[0], host, port, key)
            return True
        if self.check is HostKeyCheck.ASK and sys.stdin.isatty():
            answer = input(
                f"The authenticity of host '{host}' ({address}) can't be established.\n"
                f"{key.get_algorithm()} key fingerprint is {key.get_fingerprint()}.\n"
                "Are you sure you want to continue connecting (yes/no)? "
            )
            if answer.strip().lower() in ("yes", "y"):
                _remember(self.verdict.files[0], host, port, key)
                return True
            self.verdict.reason = "declined"
        return False


def _remember(path: Path, host: str, port: int, key: asyncssh.SSHKey) -> None:
    """Append the key to known_hosts, as OpenSSH does for an accepted new key."""
    name = host if port == 22 else f"[{host}]:{port}"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
    with open(path, "a") as fh:
        fh.write(line)
    KNOWN_HOSTS.forget(path)


class SshConnection:
    """One open SSH connection to a target (a `pyclan.deploy.connection.Connection`); `run`
    executes a shell script as root."""

    def __init__(self, target: Target, conn: asyncssh.SSHClientConnection) -> None:
        self.target = target
        self._conn = conn
        self.username: str = conn.get_extra_info("username") or ""

    @property
    def as_root(self) -> bool:
        return self.username == "root"

    def command(self, script: str, *args: str) -> str:
        """`sh -c SCRIPT pyclan ARGS…`, through `sudo -n` unless logged in as root."""
        cmd = shlex.join(["sh", "-c", script, "pyclan", *args])
        return cmd if self.as_root else f"sudo -n {cmd}"

    async def run(
        self, script: str, *args: str, input: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        try:
            proc = await asyncio.wait_for(
                self._conn.run(self.command(script, *args), input=input, encoding=None, check=False),
                timeout,
            )
        except (asyncssh.Error, OSError) as exc:
            raise _error(self.target, f"the connection to {self.target} broke: {_describe(exc)}") from None
        except TimeoutError:
            raise _error(self.target, f"a command on {self.target} did not finish within {timeout:.0f} s") from None
        status = proc.exit_status if proc.exit_status is not None else 255
        out = proc.stdout if isinstance(proc.stdout, bytes) else b""
        err = proc.stderr if isinstance(proc.stderr, bytes) else b""
        if status != 0 and not self.as_root and b"sudo" in err and b"password" in err:
            raise _error(
                self.target, f"{self.username}@{self.target.host} cannot run commands as root without a password",
                hint="deploy as root (`--target-host root@…`), or allow this user passwordless sudo",
            )
        return CommandResult(status, out, err)

    async def stream(self, command: str) -> int:
        """Run `command` with this process's stdout/stderr (and stdin if it is a pipe or file)."""
        stdin: Any = asyncssh.DEVNULL
        try:
            mode = os.fstat(sys.stdin.fileno()).st_mode
        except (OSError, ValueError):
            mode = 0
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            stdin = sys.stdin.buffer
        elif stat.S_ISREG(mode):
            stdin = asyncssh.PIPE
        proc = await self._conn.create_process(
            command, stdin=stdin, stdout=sys.stdout.buffer, stderr=sys.stderr.buffer, encoding=None,
            recv_eof=False,  # our stdout and stderr stay open after the command ends
        )
        if stat.S_ISREG(mode):
            proc.stdin.write(sys.stdin.buffer.read())
            proc.stdin.write_eof()
        await proc.wait(check=False)
        sys.stdout.flush()
        return proc.exit_status if proc.exit_status is not None else 255

    async def close(self) -> None:
        self._conn.close()
        with contextlib.suppress(TimeoutError, asyncssh.Error, OSError):
            await asyncio.wait_for(self._conn.wait_closed(), 5)

    async def __aenter__(self) -> SshConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, asyncssh.DisconnectError) and exc.reason:
        text = exc.reason
    return text


async def connect(
    target: Target, check: HostKeyCheck = HostKeyCheck.STRICT, timeout: float = CONNECT_TIMEOUT
) -> SshConnection:
    """Open the connection (raises a ClanError that says what failed and what to do)."""
    check_target(target)
    verdict = _Verdict()
    options: dict[str, Any] = {
        "known_hosts": _known_hosts_option(target, check),
        "config": () if target.ssh_config else [],
        "connect_timeout": timeout,
        "login_timeout": timeout,
        "keepalive_interval": 30,
    }
    if target.user:
        options["username"] = target.user
    if target.port:
        options["port"] = target.port
    if target.jump:
        options["tunnel"] = target.jump
    if target.identity is not None:
        options["client_keys"] = [str(target.identity)]
        options["agent_path"] = None
    try:
        conn = await asyncssh.connect(
            target.host, client_factory=lambda: _Client(target, check, verdict), **options
        )
    except asyncssh.HostKeyNotVerifiable:
        raise _host_key_error(target, check, verdict) from None
    except asyncssh.PermissionDenied:
        user = target.user or "(your user name or ~/.ssh/config's User)"
        raise _error(
            target, f"{target}: authentication as {user} failed",
            hint="the host must accept one of your keys: load it into ssh-agent or name it as IdentityFile "
            "in ~/.ssh/config" if target.identity is None else f"the host does not accept {target.identity}",
        ) from None
    except TimeoutError:
        if target.silent is not None:
            raise _error(target, *target.silent) from None
        raise _error(
            target, f"cannot connect to {target}: no answer within {timeout:.0f} s",
            hint=f"is the machine up and reachable? (address from {target.source})",
        ) from None
    except (OSError, asyncssh.Error, UnicodeError) as exc:  # UnicodeError: a host name IDNA cannot encode
        if target.silent is not None and _nothing_answers(exc):
            raise _error(target, *target.silent) from None
        raise _error(
            target, f"cannot connect to {target}: {_describe(exc)}",
            hint=f"is the machine up and reachable, with sshd running? (address from {target.source})",
        ) from None
    return SshConnection(target, conn)


_SSH_CONFIG = Path("~/.ssh/config")


def _known_hosts_option(target: Target, check: HostKeyCheck) -> Any:
    """asyncssh's `known_hosts`: None (no checking), a parsed file from KNOWN_HOSTS, or `()`
    (asyncssh decides, from the user's ssh config).

    Without an own file, asyncssh reads the ssh config's UserKnownHostsFile/GlobalKnownHostsFile,
    else ~/.ssh/known_hosts if it is readable. The parsed default file is passed only when that is
    certain: no ssh config is read, or it names no known-hosts file and includes no other file.
    """
    if check is HostKeyCheck.NONE:
        return None
    path = target.known_hosts
    if path is None:
        if target.ssh_config and _config_may_name_known_hosts():
            return ()
        path = Path("~/.ssh/known_hosts").expanduser()
        if not (path.is_file() and os.access(path, os.R_OK)):
            return ()
        return KNOWN_HOSTS.get(path) or ()
    return KNOWN_HOSTS.get(path) or str(path)


def _config_may_name_known_hosts() -> bool:
    try:
        text = _SSH_CONFIG.expanduser().read_text(errors="replace").lower()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return "knownhostsfile" in text or "include" in text


def _nothing_answers(exc: BaseException) -> bool:
    """The TCP connection itself failed (refused, or no route to the host)."""
    if isinstance(exc, asyncssh.Error):
        return False
    return isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN)
    )


def _host_key_error(target: Target, check: HostKeyCheck, verdict: _Verdict) -> ClanError:
    files = ", ".join(str(f) for f in verdict.files) or "known_hosts"
    host = target.host if not target.port or target.port == 22 else f"[{target.host}]:{target.port}"
    if verdict.reason == "changed":
        return _error(
            target,
            f"the host key of {target.host} has changed: it is not the key recorded in {files} "
            f"(it offered {verdict.fingerprint}). Either the machine was reinstalled, or someone is intercepting "
            "the connection",
            hint=f"if the machine was reinstalled, remove the old key (`ssh-keygen -R '{host}'"
            + (f" -f {verdict.files[0]}" if target.known_hosts else "") + "`) and connect again",
        )
    if verdict.reason == "declined":
        return _error(target, f"the host key of {target.host} was not accepted")
    extra = " and no terminal to ask on" if check is HostKeyCheck.ASK else ""
    return _error(
        target,
        f"the host key of {target.host} ({verdict.fingerprint or 'unknown key'}) is not in {files}, "
        f"and host key checking is {check.value}{extra}",
        hint="check the fingerprint and add the key to known_hosts (e.g. `ssh-keyscan "
        + (f"-p {target.port} " if target.port and target.port != 22 else "")
        + f"{target.host} >> ~/.ssh/known_hosts`), or pass `--host-key-check tofu` to trust it on first use",
    )
