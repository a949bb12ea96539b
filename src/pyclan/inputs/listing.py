"""`pyclan inputs list`: every input, what it is locked to and which services it provides.

Returns JSON-able data, one entry per input name (sorted): declared inputs, overridden ones, and
`clan-core` (the bundled library, or its override), so users see every valid `module.input`.
An input that fails to resolve keeps its row, with the problem in `error`.
"""

from __future__ import annotations

from typing import Any

from pyclan.errors import ClanError
from pyclan.inputs.providers import CLAN_CORE, InputSet
from pyclan.services.registry import BUNDLED_LABEL, LIBRARY_DIR, FolderProvider


def describe_inputs(inputs: InputSet) -> dict[str, dict[str, Any]]:
    """name → {kind, source, locked, overridden, services, error}."""
    rows: dict[str, dict[str, Any]] = {}
    for name in inputs.names():
        row: dict[str, Any] = {
            "kind": inputs.kind_of(name) if name in inputs.specs else "bundled",
            "source": _declared_source(inputs, name),
            "locked": None,
            "overridden": str(inputs.overrides[name]) if name in inputs.overrides else None,
            "services": [],
            "error": None,
        }
        try:
            if name not in inputs.overrides and name in inputs.lock.entries:
                row["locked"] = inputs.lock.entries[name].to_json()
            resolved = inputs.resolve(name)
            row["services"] = resolved.provider.names()
            if resolved.entry is not None:
                row["locked"] = resolved.entry.to_json()
        except ClanError as err:
            row["error"] = "; ".join(p.message for p in err.problems)
        rows[name] = row
    if CLAN_CORE not in rows:
        rows[CLAN_CORE] = {
            "kind": "bundled",
            "source": str(LIBRARY_DIR),
            "locked": None,
            "overridden": None,
            "services": FolderProvider(BUNDLED_LABEL, LIBRARY_DIR).names(),
            "error": None,
        }
    return dict(sorted(rows.items()))


def _declared_source(inputs: InputSet, name: str) -> str:
    spec = inputs.specs.get(name)
    if spec is None:
        return str(LIBRARY_DIR)
    return spec.url or spec.path or spec.package or ""
