"""Problem kinds are a closed list (`pyclan.errors.PROBLEM_KINDS`), the one README documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pyclan.errors import PROBLEM_KINDS, ClanError, Problem

ROOT = Path(__file__).resolve().parents[2]


def _kinds_in_source() -> set[str]:
    """String kinds given to Problem(...), ClanError.single(...), a problem list's add(...) or safepath's `kind=`."""
    found: set[str] = set()
    for path in (ROOT / "src" / "pyclan").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Assign) and ast.unparse(node.targets[0]).endswith("_KIND")
                    and isinstance(node.value, ast.Constant)):
                found.add(node.value.value)
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
            first = node.args[0] if node.args else None
            if name in ("Problem", "single", "add") and isinstance(first, ast.Constant) and type(first.value) is str:
                found.add(first.value)
            is_safepath = isinstance(fn, ast.Attribute) and ast.unparse(fn.value) == "safepath"
            for kw in node.keywords:
                if kw.arg == "kind" and is_safepath and isinstance(kw.value, ast.Constant):
                    found.add(kw.value.value)
    return found


def test_every_problem_kind_in_the_source_is_in_the_list_and_every_listed_kind_is_used() -> None:
    used = _kinds_in_source()
    assert used - PROBLEM_KINDS == set()
    assert PROBLEM_KINDS - used == set()


def test_readme_documents_exactly_the_problem_kinds() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("Errors (`--json`") :].split("\n\n")[0]
    listed = set(re.findall(r"`([a-z]+(?:-[a-z]+)*)`", paragraph))
    assert listed == PROBLEM_KINDS


def test_a_problem_of_an_unlisted_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown problem kind 'made-up'"):
        Problem("made-up", "machines.a", "x")
    with pytest.raises(ValueError):
        ClanError.single("no-such-kind", "", "x")
