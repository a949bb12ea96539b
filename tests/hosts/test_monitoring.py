"""monitoring on real hosts: Prometheus on the server scrapes the node exporter of every client.

Two hosts, both clients (tag `all`), one of them the server. After one `machines update`, the
server's HTTP API (queried from this machine over the hosts' bridge) reports `up == 1` for both
clients, labelled with their machine names.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DeployClan, LocalHosts, started_hosts_fixture  # noqa: F401

from pyclan.vars.keys import keygen

pytestmark = pytest.mark.hosts

SERVER, CLIENT = "mon-server", "mon-client"

INVENTORY = """
[meta]
name = "monitoring"
[machines.mon-server]
[machines.mon-client]
[instances.internet]
roles.default.machines.mon-server.settings.host = "{server}"
roles.default.machines.mon-client.settings.host = "{client}"
[instances.monitoring]
roles.client.tags = ["all"]
roles.server.machines.mon-server = {{}}
"""


@pytest.fixture
def clan_root(tmp_path: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
        mp.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
        root = tmp_path / "clan"
        root.mkdir()
        keygen(root, "tester")
        yield root


def _up(server: str) -> dict[str, str]:
    """machine label → value of `up`, as the server's query API answers now."""
    with urllib.request.urlopen(f"http://{server}:9090/api/v1/query?query=up", timeout=5) as response:
        body: Any = json.load(response)
    assert body["status"] == "success"
    return {r["metric"].get("machine", "?"): r["value"][1] for r in body["data"]["result"]}


def test_the_server_scrapes_every_client(clan_root: Path, started_hosts: LocalHosts) -> None:
    infos = {h.name: h for h in started_hosts([SERVER, CLIENT])}
    (clan_root / "clan.toml").write_text(INVENTORY.format(server=infos[SERVER].address, client=infos[CLIENT].address))
    clan = DeployClan(clan_root)
    clan.cli("machines", "update", SERVER, CLIENT, check=True, timeout=900)
    # Prometheus scrapes every 15 s: wait (up to two minutes) for the first scrape of both clients
    seen: dict[str, str] = {}
    for _ in range(60):
        try:
            seen = _up(infos[SERVER].address)
        except OSError:  # Prometheus still starting
            seen = {}
        if seen == {SERVER: "1", CLIENT: "1"}:
            break
        time.sleep(2)
    assert seen == {SERVER: "1", CLIENT: "1"}
