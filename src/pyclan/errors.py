"""Problems and errors that users see.

Every failure a user can cause is a `Problem`: a kind from a fixed list, the path inside the
inventory (or other file) where it happened, a message, and where possible a hint that says
how to fix it. Functions collect problems instead of stopping at the first, so `pyclan check`
can show all of them at once; `ClanError` carries them to the CLI, which prints them without
a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

PROBLEM_KINDS = frozenset(
    {
        "parse-error",
        "inventory-type",
        "inventory-unknown-field",
        "inventory-removed-option",
        "duplicate-definition",
        "unknown-machine",
        "unknown-role",
        "unknown-module",
        "unknown-input",
        "unknown-setting",
        "settings-type",
        "missing-setting",
        "conflict",
        # beyond the inventory
        "service-error",
        "config-conflict",
        "export-error",
        "vars-error",
        "input-error",
        "deploy-error",
        "usage-error",
        # inventory writes
        "inventory-changed",
        "unknown-instance",
        "unknown-tag",
        "read-only",
        "internal-error",  # a bug in pyclan, caught by the CLI's error handler
    }
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong, with enough context to find and fix it."""

    kind: str
    path: str
    message: str
    file: str | None = None
    hint: str | None = None
    line: int | None = None
    column: int | None = None

    def __post_init__(self) -> None:
        # the kinds are a contract (README, `--json`): a new one must be added to PROBLEM_KINDS
        if self.kind not in PROBLEM_KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}: add it to pyclan.errors.PROBLEM_KINDS and README")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def render(self) -> str:
        """Human form: `file:line:col: path: message (hint)`."""
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        head = ": ".join(part for part in (where, self.path) if part)
        text = f"{head}: {self.message}" if head else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ClanError(Exception):
    """Raised with one or more problems; the CLI prints them and exits 1."""

    def __init__(self, problems: Problem | Iterable[Problem]) -> None:
        self.problems: list[Problem] = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(p.render() for p in self.problems))

    @classmethod
    def single(cls, kind: str, path: str, message: str, **extra: Any) -> ClanError:
        return cls(Problem(kind, path, message, **extra))


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean …?' hint for a misspelt name, or None if nothing is close."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


def unknown_machine(name: str, known: Iterable[str]) -> Problem:
    """The one wording of 'no such machine' (whichever command names it), with a did-you-mean
    or the list of machines."""
    names = sorted(known)
    return Problem(
        "unknown-machine",
        f"machines.{name}",
        f"no machine named '{name}' in the inventory",
        hint=did_you_mean(name, names) or f"known machines: {', '.join(names) or 'none'}",
    )


@dataclass
class ProblemList:
    """Collects problems during one pass; `raise_if_any` turns them into a ClanError."""

    items: list[Problem] = field(default_factory=list)

    def add(self, kind: str, path: str, message: str, **extra: Any) -> None:
        self.items.append(Problem(kind, path, message, **extra))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ClanError(self.items)

