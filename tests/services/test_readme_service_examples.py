"""The TOML examples of README's "Bundled services" section resolve: every setting they use exists."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from pyclan.clan import Clan

README = Path(__file__).resolve().parents[2] / "README.md"


def _examples() -> list[tuple[str, str]]:
    text = README.read_text()
    section = text.split("\n## Bundled services\n", 1)[1].split("\n## ", 1)[0]
    found: list[tuple[str, str]] = []
    for part in section.split("\n### ")[1:]:
        service = part.split("\n", 1)[0].strip()
        found += [(service, block) for block in re.findall(r"```toml\n(.*?)```", part, flags=re.S)]
    return found


EXAMPLES = _examples()


def test_every_bundled_service_section_has_an_example() -> None:
    assert {s for s, _ in EXAMPLES} >= {
        "hello-world", "packages", "users", "internet", "wifi", "sshd", "zerotier", "wireguard", "borgbackup"}


@pytest.mark.parametrize(("service", "example"), EXAMPLES, ids=[s for s, _ in EXAMPLES])
def test_readme_example_resolves(make_clan: Callable[..., Clan], service: str, example: str) -> None:
    machines = sorted(set(re.findall(r"machines\.([A-Za-z0-9_-]+)", example)))
    tags = sorted(set(re.findall(r'tags = \["([^"]+)"\]', example)) - {"all"})
    header = '[meta]\nname = "readme"\n' + "".join(
        f"[machines.{m}]\ntags = {tags!r}\n".replace("'", '"') for m in machines or ["m1"]
    )
    clan = make_clan(header + example)
    resolved = clan.resolved
    assert resolved.instances, service
    assert not [c for c in resolved.checks if c.severity == "error" and "minMachines" not in c.id], resolved.checks
