"""known_hosts is parsed once per command, yet every change to the file is seen at once.

Real SSH connections (`pyclan.deploy.transport.connect`) to in-process asyncssh servers on
127.0.0.1, each with its own host key; the known_hosts file holds many other hosts' keys too,
as a fleet's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest

from pyclan.deploy import transport
from pyclan.deploy.transport import HostKeyCheck, Target, connect
from pyclan.errors import ClanError

OTHER_HOSTS = 30


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True  # ask for a key (the authorized one below)


@asynccontextmanager
async def ssh_server(client_key: asyncssh.SSHKey) -> AsyncIterator[tuple[int, asyncssh.SSHKey]]:
    """An SSH server on 127.0.0.1 that accepts `client_key`; yields its port and host key."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key("openssh").decode())
    server = await asyncssh.listen(
        "127.0.0.1", 0, server_factory=_Server, server_host_keys=[host_key], authorized_client_keys=authorized,
    )
    try:
        yield server.sockets[0].getsockname()[1], host_key
    finally:
        server.close()
        await server.wait_closed()


def known_hosts_line(port: int, key: asyncssh.SSHKey) -> str:
    return f"[127.0.0.1]:{port} {key.export_public_key('openssh').decode().strip()}\n"


def fleet_lines() -> str:
    """Entries of other hosts, so the file is as big as a fleet's."""
    return "".join(
        f"10.9.0.{i} {asyncssh.generate_private_key('ssh-ed25519').export_public_key('openssh').decode().strip()}\n"
        for i in range(OTHER_HOSTS)
    )


@pytest.fixture
def client_key(tmp_path: Path) -> tuple[asyncssh.SSHKey, Path]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "id_ed25519"
    key.write_private_key(str(path))
    return key, path


def target(port: int, identity: Path, known_hosts: Path) -> Target:
    return Target(
        machine="web", host="127.0.0.1", user="root", port=port, source="test",
        identity=identity, known_hosts=known_hosts, ssh_config=False,
    )



async def connect_and_close(t: Target, check: HostKeyCheck = HostKeyCheck.STRICT) -> None:
    conn = await connect(t, check, timeout=10)
    await conn.close()


def test_known_hosts_is_parsed_once_across_many_connections(
    tmp_path: Path, client_key: tuple[asyncssh.SSHKey, Path]
) -> None:
    key, identity = client_key
    known = tmp_path / "known_hosts"

    async def main() -> int:
        async with ssh_server(key) as (port_a, host_a), ssh_server(key) as (port_b, host_b):
            known.write_text(fleet_lines() + known_hosts_line(port_a, host_a) + known_hosts_line(port_b, host_b))
            before = transport.KNOWN_HOSTS.parses
            for port in (port_a, port_b, port_a, port_b, port_a, port_b):
                await connect_and_close(target(port, identity, known))
            return transport.KNOWN_HOSTS.parses - before

    assert asyncio.run(main()) == 1


def test_known_hosts_is_read_again_after_a_tofu_append(
    tmp_path: Path, client_key: tuple[asyncssh.SSHKey, Path]
) -> None:
    key, identity = client_key
    known = tmp_path / "known_hosts"
    known.write_text(fleet_lines())

    async def main() -> None:
        async with ssh_server(key) as (port, host_key):
            with pytest.raises(ClanError, match="is not in"):
                await connect_and_close(target(port, identity, known))  # parsed: the key is unknown
            await connect_and_close(target(port, identity, known), HostKeyCheck.TOFU)  # appends it
            assert known.read_text().endswith(known_hosts_line(port, host_key))
            parses = transport.KNOWN_HOSTS.parses
            await connect_and_close(target(port, identity, known))  # strict: the appended key is trusted
            assert transport.KNOWN_HOSTS.parses == parses + 1
            await connect_and_close(target(port, identity, known))
            assert transport.KNOWN_HOSTS.parses == parses + 1

    asyncio.run(main())


def test_known_hosts_is_read_again_after_the_file_changes(
    tmp_path: Path, client_key: tuple[asyncssh.SSHKey, Path]
) -> None:
    key, identity = client_key
    known = tmp_path / "known_hosts"
    others = fleet_lines()

    async def main() -> None:
        async with ssh_server(key) as (port, host_key):
            known.write_text(others + known_hosts_line(port, host_key))
            await connect_and_close(target(port, identity, known))
            # the host was reinstalled: another key is recorded now (same file size, same second)
            stale = asyncssh.generate_private_key("ssh-ed25519")
            known.write_text(others + known_hosts_line(port, stale))
            with pytest.raises(ClanError, match="has changed"):
                await connect_and_close(target(port, identity, known))
            known.write_text(others)  # the stale key removed (ssh-keygen -R)
            with pytest.raises(ClanError, match="is not in"):
                await connect_and_close(target(port, identity, known))
            known.write_text(others + known_hosts_line(port, host_key))
            await connect_and_close(target(port, identity, known))

    asyncio.run(main())


def test_no_host_key_check_reads_no_known_hosts(tmp_path: Path, client_key: tuple[asyncssh.SSHKey, Path]) -> None:
    key, identity = client_key
    known = tmp_path / "known_hosts"
    known.write_text(fleet_lines())

    async def main() -> int:
        async with ssh_server(key) as (port, _host_key):
            before = transport.KNOWN_HOSTS.parses
            await connect_and_close(target(port, identity, known), HostKeyCheck.NONE)
            return transport.KNOWN_HOSTS.parses - before

    assert asyncio.run(main()) == 0
