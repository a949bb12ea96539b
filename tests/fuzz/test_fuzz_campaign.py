"""A small, fast run of the fuzz campaign (benchmarks/fuzz_campaign.py, issue 10 "Measure"):
mutated and random inventories through load → resolve → evaluate → build end as a result or a
clean ClanError, within the time and memory limits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

CAMPAIGN = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_campaign.py"


def _campaign() -> ModuleType:
    """benchmarks/fuzz_campaign.py (it imports fuzz_cases.py from its own folder)."""
    spec = importlib.util.spec_from_file_location("fuzz_campaign", CAMPAIGN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_campaign"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_fuzz_campaign_small_run_has_no_exception_hang_or_blowup(tmp_path: Path) -> None:
    campaign = _campaign()
    report = campaign.run_campaign(cases=150, workers=1, master=20261201, out=tmp_path / "bugs")
    summary = report.to_json()
    assert summary["cases"] == 150
    assert summary["bugs"] == [], summary["bugs"]
    assert summary["outcomes"]["exception"] == summary["outcomes"]["hang"] == summary["outcomes"]["blowup"] == 0
    assert summary["outcomes"]["ok"] > 0 and summary["outcomes"]["clean"] > 0  # both ends are reached
    assert set(summary["kinds"]) == {"toml-text", "json-text", "interface", "gentle", "structural", "random"}


def test_fuzz_cases_are_reproducible_from_their_number() -> None:
    campaign = _campaign()
    seeds = campaign.load_seeds()
    assert seeds[0].name == "quickstart" and len(seeds) > 10  # the quickstart and the tests' inventories
    first = [campaign.make_case(i, seeds, 7).files for i in range(40)]
    again = [campaign.make_case(i, seeds, 7).files for i in range(40)]
    assert first == again
    assert len({tuple(sorted(files.items())) for files in first}) > 35
