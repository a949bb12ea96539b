"""API of the inventory as data: members and merged settings per machine, and its schema."""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict

from pyclan.api import register
from pyclan.api.common import CheckResult, Notice, notices, open_flake
from pyclan.api.writes import InventoryState


class ResolvedRoleJson(TypedDict):
    """A machine's role in an instance, with its merged settings."""

    settings: dict[str, Any]


class ResolvedMembershipJson(TypedDict):
    """One instance a machine is in: service, input and the machine's roles there."""

    service: str
    input: str | None
    roles: dict[str, ResolvedRoleJson]


class ResolvedMachineJson(TypedDict):
    """A machine's effective tags and instances."""

    tags: list[str]
    instances: dict[str, ResolvedMembershipJson]


class ResolvedInventoryJson(TypedDict):
    """`pyclan inventory resolve --json`: per machine its instances, roles and merged settings;
    per instance its role members; the constraint checks and warnings."""

    machines: dict[str, ResolvedMachineJson]
    members: dict[str, dict[str, list[str]]]
    checks: list[CheckResult]
    warnings: list[Notice]


@register
def resolve_inventory(
    flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> ResolvedInventoryJson:
    """Role members and merged settings per machine (the shape tools depend on)."""
    from pyclan.perf import gc_paused

    resolved = open_flake(flake, input_overrides).resolved
    with gc_paused():
        data = resolved.to_json()
    return {
        "machines": data["machines"],
        "members": data["members"],
        "checks": [CheckResult(c.id, c.message, c.severity) for c in resolved.checks],
        "warnings": notices(resolved.warnings),
    }


@register
def inventory_schema() -> dict[str, Any]:
    """The JSON Schema of the inventory (clan.toml / inventory.json)."""
    from pyclan.inventory.schema import inventory_json_schema

    return inventory_json_schema()


@register
def get_inventory_state(flake: str | None = None) -> InventoryState:
    """A content hash of the inventory files: pass it as `expected_hash` to refuse stale writes."""
    from pyclan.api.writes import state

    return state(flake)
