"""Small clans for tests: the type of the `make_clan` fixture (tests/conftest.py) that writes them."""

from __future__ import annotations

from collections.abc import Callable

from pyclan.clan import Clan

MakeClan = Callable[..., Clan]
"""`make_clan(toml="", services=None, inventory_json=None, name="clan") -> Clan`."""
