"""Export scopes (clan-semantics §11): `service:instance:role:machine` keys and their rules.

Services publish data for other services and for pyclan itself (e.g. the `internet` service
tells deploy how to reach a machine). Every key has four parts; an empty part means "all".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pyclan.errors import ClanError

# Interfaces any service may name in `exports_out` (Clan's built-in ones).
BUILTIN_INTERFACES: Mapping[str, Mapping[str, Any]] = {
    "peer": {},
    "networking": {"priority": 1000, "module": "clan_lib.network.direct"},
    "dataMesher": {},
    "endpoints": {},
    "generators": {},
    "auth": {},
}

ExportValue = dict[str, Any]  # interface name → value
ExportMap = dict[str, ExportValue]  # scope key → interfaces


@dataclass(frozen=True)
class Scope:
    service: str = ""
    instance: str = ""
    role: str = ""
    machine: str = ""

    @property
    def key(self) -> str:
        return build_scope_key(self.service, self.instance, self.role, self.machine)


def build_scope_key(service: str = "", instance: str = "", role: str = "", machine: str = "") -> str:
    parts = (service, instance, role, machine)
    if not any(parts):
        raise ClanError.single("export-error", ":::", 'Global exports (":::") are not yet supported')
    if not service and not machine:
        raise ClanError.single(
            "export-error", ":".join(parts), "an export scope requires at least a service or a machine name"
        )
    for part in parts:
        if ":" in part:
            raise ClanError.single("export-error", part, f"export scope part {part!r} may not contain ':'")
    return ":".join(parts)


def parse_scope(key: str) -> Scope:
    parts = key.split(":")
    if len(parts) != 4:
        raise ClanError.single(
            "export-error", key, "invalid scope string format: expected 'service:instance:role:machine'"
        )
    return Scope(*parts)


def check_scope(key: str, expected: Scope, origin: str) -> None:
    """Refuse keys outside `expected` (non-empty parts must match), as R11.2/R11.3 do."""
    scope = parse_scope(key)
    for label, want, got in (
        ("service name", expected.service, scope.service),
        ("instance name", expected.instance, scope.instance),
        ("role name", expected.role, scope.role),
        ("machine name", expected.machine, scope.machine),
    ):
        if want and want != got:
            raise ClanError.single(
                "export-error",
                key,
                f"Export scope mismatch: incorrect {label} in {origin}: scope key {key!r}, expected {want!r}",
                hint=f'services can only export to their own scope (here: "{expected.service}:::")',
            )


def select_exports(pred: Callable[[Scope], bool], exports: Mapping[str, ExportValue]) -> dict[str, ExportValue]:
    """Keep the keys whose parsed scope satisfies `pred` (Clan's selectExports)."""
    if not callable(pred):
        raise ClanError.single("export-error", "", "selectExports expected a function")
    return {k: v for k, v in exports.items() if pred(parse_scope(k))}


def get_export(exports: Mapping[str, ExportValue], **scope: str) -> ExportValue:
    key = build_scope_key(**scope)
    if key not in exports:
        available = ", ".join(sorted(exports)) or "(none)"
        raise ClanError.single("export-error", key, f"getExport: export not found; available keys: {available}")
    return exports[key]
