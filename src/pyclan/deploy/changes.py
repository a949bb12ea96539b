"""What an update changes on a host, as plain data: the result of `deploy.diff.compare`.

Standard library only, so the API's result types can use it without loading the deploy stack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FileChange:
    """A path that an update adds, changes or removes (a diff for non-secret files)."""

    path: str
    kind: str  # "added", "changed", "removed", "metadata"
    diff: str | None = None  # unified diff (never for secrets)
    secret: bool = False


@dataclass
class Changes:
    """What an update would change on a host (`--dry-run`)."""

    files: list[FileChange] = field(default_factory=list)
    packages_added: list[str] = field(default_factory=list)
    packages_removed: list[str] = field(default_factory=list)
    users_added: list[str] = field(default_factory=list)
    users_changed: list[str] = field(default_factory=list)
    users_removed: list[str] = field(default_factory=list)
    groups_added: list[str] = field(default_factory=list)
    groups_removed: list[str] = field(default_factory=list)
    units_started: list[str] = field(default_factory=list)
    units_restarted: list[str] = field(default_factory=list)
    units_stopped: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)  # run because a file, link, secret, package, user or hook changed

    def empty(self) -> bool:
        return not any(v for k, v in asdict(self).items() if k != "hooks")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable summary, one change per line, diffs indented below their file."""
        out: list[str] = []
        for f in self.files:
            what = "secret " if f.secret else ""
            out.append(f"{f.kind} {what}{f.path}")
            if f.diff:
                out.extend("    " + line for line in f.diff.splitlines())
        for label, items in (
            ("install package", self.packages_added), ("remove package", self.packages_removed),
            ("create user", self.users_added), ("update user", self.users_changed),
            ("remove user", self.users_removed), ("create group", self.groups_added),
            ("remove group", self.groups_removed), ("start unit", self.units_started),
            ("restart unit", self.units_restarted), ("stop unit", self.units_stopped),
        ):
            out.extend(f"{label} {item}" for item in items)
        if not self.empty() and self.hooks:
            out.append("run hooks " + ", ".join(self.hooks))
        return out
