"""Service constraints as checks, with Clan's ids and wording (clan-semantics §10).

Constraints never fail evaluation; they produce `{id, message, severity}` entries that
`pyclan check` reports and that block `vars generate`, `machines update` and `install`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyclan.errors import ClanError, Problem
from pyclan.services.service import Service


@dataclass(frozen=True)
class Check:
    id: str
    message: str
    severity: str = "error"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "message": self.message, "severity": self.severity}


def service_checks(service: Service, members: Mapping[str, Mapping[str, Sequence[str]]]) -> list[Check]:
    """Checks for one service group; `members` is instance → role → member names."""
    checks: list[Check] = []
    s = service.name
    limit = service.constraints.max_instances
    if limit is not None and len(members) > limit:
        checks.append(
            Check(
                f"{s}-maxInstances", f"Service '{s}' allows at most {limit} instance(s) but {len(members)} are defined."
            )
        )
    for role in sorted(service.constraints.roles):
        rule = service.constraints.roles[role]
        for instance in sorted(members):
            n = len(members[instance].get(role, ()))
            if rule.min_machines is not None and n < rule.min_machines:
                checks.append(
                    Check(
                        f"{s}-{instance}-{role}-minMachines",
                        f"Role '{role}' of service '{s}' instance '{instance}' requires at least "
                        f"{rule.min_machines} machine(s) but {n} are assigned.",
                    )
                )
            if rule.max_machines is not None and n > rule.max_machines:
                checks.append(
                    Check(
                        f"{s}-{instance}-{role}-maxMachines",
                        f"Role '{role}' of service '{s}' instance '{instance}' allows at most "
                        f"{rule.max_machines} machine(s) but {n} are assigned.",
                    )
                )
    return checks


def enforce(checks: Sequence[Check], what: str = "this command") -> None:
    """Raise if any check is an error (R10.4), as `vars generate` and deploy require."""
    errors = [c for c in checks if c.severity == "error"]
    if errors:
        raise ClanError(
            Problem(
                "service-error",
                c.id,
                f"Inventory checks failed: [{c.id}] {c.message}",
                hint=f"fix the inventory, or pass --no-check to run {what} anyway",
            )
            for c in errors
        )
