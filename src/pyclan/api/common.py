"""What the API's concept modules share: opening a clan, and the result types used by several."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyclan.errors import Problem

if TYPE_CHECKING:
    from pyclan.clan import Clan


@dataclass(frozen=True)
class Notice:
    """A warning, shaped like an error: what kind, where (inventory path), what."""

    kind: str
    path: str
    message: str


@dataclass(frozen=True)
class CheckResult:
    """One service constraint check (Clan's `{id, message, severity}`)."""

    id: str
    message: str
    severity: str


def open_flake(flake: str | Path | None, input_overrides: dict[str, str] | None = None) -> Clan:
    """The clan at `flake` (default: $CLAN_DIR or upwards from cwd), with input overrides."""
    from pyclan.clan import open_clan

    overrides = {name: Path(path).resolve() for name, path in (input_overrides or {}).items()}
    return open_clan(Path(flake) if flake else None, overrides)


_PATH_HEAD = re.compile(r"^([A-Za-z0-9_.\"'-]+): ")
_INSTANCE_HEAD = re.compile(r"^Service instance '([^']+)': - (\S+) tags")


def notices(warnings: list[str]) -> list[Notice]:
    """The library's warning strings as objects `{kind, path, message}`."""
    out = []
    for text in warnings:
        if text.startswith("meta.tld"):
            out.append(Notice("deprecated-option", "meta.tld", text))
        elif m := _INSTANCE_HEAD.match(text):
            out.append(Notice("unknown-tag", f"instances.{m[1]}.roles.{m[2]}.tags", text))
        elif m := _PATH_HEAD.match(text):
            out.append(Notice("unknown-machine", m[1], text[m.end() :]))
        else:
            out.append(Notice("warning", "", text))
    return out


def with_positions(problems: list[Problem], flake: str | Path | None) -> list[Problem]:
    """Problems with the `file:line` of their inventory path, where it is written (best effort)."""
    if not any(p.file and p.line is None for p in problems):
        return problems
    from pyclan.inventory.load import find_clan_dir
    from pyclan.inventory.positions import attach

    try:
        clan_dir = find_clan_dir(Path(flake) if flake else None)
    except Exception:  # no clan here: nothing to look into
        return problems
    return attach(problems, clan_dir)
