"""The inventory's JSON Schema, for editors, tools and UIs."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pyclan.inventory.models import Inventory

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@cache
def _schema() -> dict[str, Any]:
    schema = Inventory.model_json_schema(mode="validation")
    schema["$schema"] = SCHEMA_DIALECT
    schema["title"] = "Clan inventory"
    schema.setdefault(
        "description",
        "A clan's inventory (clan.toml / inventory.json): meta, machines, tags and service instances.",
    )
    return schema


def inventory_json_schema() -> dict[str, Any]:
    """The pydantic JSON Schema of `Inventory` (a fresh copy the caller may change)."""
    return copy.deepcopy(_schema())
