"""Clan's README examples for a service, as inventories in `clan_examples/`, through check and build.

`example_clan` copies `clan_examples/<service>.json` (Clan's inventory.json format) or
`<service>.toml` into a fresh clan with an admin age key; `check_and_build` then does what a
user does first: `pyclan check`, `pyclan vars generate`, `pyclan machines build` for every machine.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyclan import api
from pyclan.api.clan import CheckReport
from pyclan.build.generation import Generation, build
from pyclan.clan import Clan, open_clan
from pyclan.vars.generate import generate
from pyclan.vars.keys import keygen

EXAMPLES = Path(__file__).parents[1] / "services" / "clan_examples"


def example_clan(service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Clan:
    """A clan made of Clan's README example for `service`, with an admin key for its vars."""
    root = tmp_path / f"example-{service}"
    root.mkdir()
    json_file, toml_file = EXAMPLES / f"{service}.json", EXAMPLES / f"{service}.toml"
    if json_file.exists():
        shutil.copy(json_file, root / "inventory.json")
    else:
        shutil.copy(toml_file, root / "clan.toml")
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "admin.age.key"))
    keygen(root, "tester")
    return open_clan(root, {})


@dataclass
class Built:
    clan: Clan
    check: CheckReport
    generations: dict[str, Generation]


def check_and_build(clan: Clan, prompts: Mapping[str, Mapping[str, str]] | None = None) -> Built:
    """`pyclan check` (must be ok), `vars generate` (answers from `prompts`), `machines build` of all."""
    report = api.check_clan(str(clan.dir))
    assert report.ok, report
    generate(clan, prompt_values={g: dict(a) for g, a in (prompts or {}).items()})
    fresh = open_clan(clan.dir, {})
    generations = {m: build(fresh, m, write=False) for m in sorted(fresh.resolved.machine_names)}
    return Built(fresh, report, generations)
