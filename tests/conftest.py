"""Shared fixtures: small clans written to temporary directories."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pyclan.clan import Clan, open_clan

MakeClan = Callable[..., Clan]


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
