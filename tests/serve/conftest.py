"""Fixtures of the `pyclan serve` tests: a copy of the quickstart clan, the app behind a token."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "examples" / "quickstart"
DEMO_KEY = REPO / "examples" / "quickstart-demo-admin.age.key"
TOKEN = "test-token-" + "x" * 32


@pytest.fixture
def clan_dir(tmp_path: Path) -> Path:
    target = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, target)
    return target


@pytest.fixture
def admin_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The quickstart's demo admin key (mode 0600, as pyclan requires), as the server's key."""
    key = tmp_path / "admin.age.key"
    key.write_bytes(DEMO_KEY.read_bytes())
    key.chmod(0o600)
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(key))
    return key


@pytest.fixture
def client(clan_dir: Path, admin_key: Path) -> Iterator[object]:
    from starlette.testclient import TestClient

    from pyclan.serve.app import create_app

    with TestClient(create_app(clan_dir, TOKEN), base_url="http://127.0.0.1:8765") as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


@pytest.fixture
def silent_ssh_port() -> Iterator[int]:
    """A port that accepts connections and never says anything (an SSH server that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()
