"""Shared fixtures: every test's own environment; small clans written to temporary directories."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from clans import MakeClan

from pyclan.clan import Clan, open_clan

# pyclan's state outside the clan: each test gets its own (a developer's cache, age key or running
# local hosts never leak in), and the developer's clan and sops keys are not seen.
OWN_PER_TEST = {"PYCLAN_CACHE_DIR": "cache", "PYCLAN_AGE_KEY_FILE": "age.key", "PYCLAN_HOSTS_DIR": "no-local-hosts"}
UNSET = ("CLAN_DIR", "SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE")
_AT_START = {var: os.environ.get(var) for var in (*OWN_PER_TEST, *UNSET)}


@pytest.fixture(autouse=True)
def isolated_environment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The one set-up of the environment variables above, for every test.

    A variable that a wider fixture (module or session scope, set up before this one) already
    chose is left as it is, and so is everything for tests on real local hosts, whose session
    fixture owns PYCLAN_HOSTS_*. A test sets its own values on top with `monkeypatch.setenv`.
    """
    if request.node.get_closest_marker("hosts") is None:
        own: Path | None = None
        for var, name in OWN_PER_TEST.items():
            if os.environ.get(var) == _AT_START[var]:
                own = own or tmp_path_factory.mktemp("env")
                monkeypatch.setenv(var, str(own / name))
        for var in UNSET:
            if os.environ.get(var) == _AT_START[var]:
                monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def make_clan(tmp_path: Path) -> MakeClan:
    """Write clan.toml (+ optional inventory.json and services/*.py) and open the clan."""

    def make(
        toml: str = "",
        services: dict[str, str] | None = None,
        inventory_json: str | None = None,
        name: str = "clan",
    ) -> Clan:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        if toml or inventory_json is None:
            (root / "clan.toml").write_text(textwrap.dedent(toml))
        if inventory_json is not None:
            (root / "inventory.json").write_text(inventory_json)
        for svc_name, code in (services or {}).items():
            (root / "services").mkdir(exist_ok=True)
            (root / "services" / f"{svc_name}.py").write_text(textwrap.dedent(code))
        return open_clan(root, {})

    return make
