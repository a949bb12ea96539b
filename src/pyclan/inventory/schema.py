"""The inventory's JSON Schema, for editors, tools and UIs."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pyclan.inventory.models import Inventory

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


_MACHINE_NAME_PATTERN = "^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"  # R1.4, without Python's inline (?i)


def _accept_what_loading_accepts(schema: dict[str, Any]) -> None:
    """Where loading is more lenient than the models' shapes, the schema says so too."""
    defs = schema["$defs"]
    # R1.7: `roles.<r>.tags` may be a list of tag names (coerced to `{tag: {}}` before validation)
    tags = defs["Role"]["properties"]["tags"]
    title = tags.pop("title", None)
    defs["Role"]["properties"]["tags"] = {
        "anyOf": [{"type": "array", "items": {"type": "string"}}, tags],
        **({"title": title} if title else {}),
        "description": "Tag names (a list), or tag → { settings } (an attrset); machines carrying a tag are members",
    }
    # machine names: a pattern every JSON Schema implementation understands (ECMA 262 has no inline flags)
    machines = schema["properties"]["machines"]
    (value,) = machines.pop("patternProperties").values()
    machines["propertyNames"] = {**machines.get("propertyNames", {}), "pattern": _MACHINE_NAME_PATTERN}
    machines["additionalProperties"] = value


@cache
def _schema() -> dict[str, Any]:
    schema = Inventory.model_json_schema(mode="validation")
    _accept_what_loading_accepts(schema)
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
