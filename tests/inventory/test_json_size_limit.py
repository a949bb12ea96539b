"""inventory.json is at most 2 MiB unless the user allows more ($PYCLAN_INVENTORY_JSON_MIB)."""

from __future__ import annotations

import pytest

from pyclan.inventory.sources import JSON_LIMIT_ENV, MAX_JSON_BYTES, size_problem


def test_the_json_limit_can_be_raised_but_not_lowered(monkeypatch: pytest.MonkeyPatch) -> None:
    big = 3 << 20
    problem = size_problem("inventory.json", big)
    assert problem is not None and JSON_LIMIT_ENV in (problem.hint or "")
    monkeypatch.setenv(JSON_LIMIT_ENV, "4")
    assert size_problem("inventory.json", big) is None
    assert size_problem("inventory.json", 5 << 20) is not None
    monkeypatch.setenv(JSON_LIMIT_ENV, "0")
    assert size_problem("inventory.json", MAX_JSON_BYTES + 1) is not None
    assert size_problem("clan.toml", 1 << 20) is not None  # TOML keeps its own limit
