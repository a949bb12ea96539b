"""Every rule number the code and the tests cite (`R5.3.3`, `R11.4`) is defined in docs/semantics.md."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CITATION = re.compile(r"\bR(\d+)\.(\d+)(?:\.(\d+))?\b")


def _defined() -> set[str]:
    """`- **R5.3**` defines R5.3; its numbered items `  3.` define R5.3.3."""
    defined: set[str] = set()
    current: str | None = None
    for line in (REPO / "docs" / "semantics.md").read_text().splitlines():
        head = re.match(r"- \*\*(R\d+\.\d+)\b", line)
        if head:
            current = head.group(1)
            defined.add(current)
            continue
        item = re.match(r"  (\d+)\. ", line)
        if item and current:
            defined.add(f"{current}.{item.group(1)}")
        elif line.startswith("#"):
            current = None
    return defined


def test_every_cited_rule_resolves_in_the_repo() -> None:
    defined = _defined()
    missing: dict[str, list[str]] = {}
    for root in ("src", "tests", "benchmarks"):
        for path in sorted((REPO / root).rglob("*.py")):
            for m in CITATION.finditer(path.read_text()):
                rule = m.group(0)
                if rule not in defined:
                    missing.setdefault(rule, []).append(str(path.relative_to(REPO)))
    assert not missing, f"rules cited but not defined in docs/semantics.md: {missing}"
