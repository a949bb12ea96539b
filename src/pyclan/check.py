"""`pyclan check`: every stage that needs no host and no admin key, and every problem at once.

The stages run on whatever the earlier ones could produce, so that one broken instance does not
hide the problems of the others: load (all problems of every file; only bad settings blocks let the
later stages run, each replaced by `{}`) →
resolve (memberships, settings, constraints) → generators (declarations, their dependency graph)
→ exports → every machine's configuration → every machine's build (paths, units, hook order).

Vars that are not generated yet are warnings: `vars generate` (or `machines update`) creates
them, and the parts of a configuration that read them are checked once they exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyclan.clan import Clan
from pyclan.errors import ClanError, Problem
from pyclan.evaluate.evaluator import Collected, Evaluator
from pyclan.evaluate.resolve import ResolvedInventory, resolve
from pyclan.inventory.load import find_clan_dir, load_inventory
from pyclan.perf import gc_paused
from pyclan.vars.view import NOT_GENERATED


@dataclass
class CheckReport:
    resolved: ResolvedInventory
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(c.severity == "error" for c in self.resolved.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "machines": len(self.resolved.machine_names),
            "instances": len(self.resolved.instances),
            "checks": [c.to_json() for c in self.resolved.checks],
            "warnings": list(self.warnings),
        }


def open_for_check(flake: Path | None = None, input_overrides: dict[str, Path] | None = None) -> Clan:
    """The clan, loaded leniently: a settings block that is not a valid block is a problem of the
    report (R1.8a/c) instead of stopping every later stage. Other load problems still stop here."""
    clan_dir = find_clan_dir(flake)
    loaded = load_inventory(clan_dir, lenient=True)
    return Clan(dir=clan_dir, loaded=loaded, input_overrides=dict(input_overrides or {}))


def _not_generated(p: Problem) -> bool:
    return p.kind == "vars-error" and NOT_GENERATED in p.message


def run_check(clan: Clan) -> CheckReport:
    """Check the clan; `problems` holds every problem, failed constraints included (R10.4)."""
    resolved = resolve(clan.loaded, clan.registry, strict=False)
    collected = Collected()  # groups a crash of the same service code on several machines
    collected.problems.extend(clan.loaded.problems)
    collected.problems.extend(resolved.problems)
    evaluator = Evaluator(resolved)
    collected.problems.extend(evaluator.pass_problems())
    try:
        from pyclan.vars.graph import VarsGraph

        VarsGraph(evaluator.generators(partial=True))  # generator names, dependencies, cycles
    except ClanError as err:
        collected.add(err)

    from pyclan.build.generation import generation_of
    from pyclan.build.secrets import secret_digests

    with gc_paused():  # each machine's config and build are let go right after (memory at 100,000)
        for machine in resolved.machine_names:
            try:
                config = evaluator.config(machine, partial=True)
            except ClanError as err:
                collected.add(err)
                continue
            try:
                generation_of(machine, config, secret_digests(clan.dir, machine, config), steps=False)
            except ClanError as err:
                collected.add(err)
    for check in resolved.checks:
        if check.severity == "error":
            collected.problems.append(
                Problem("service-error", check.id, f"Inventory checks failed: [{check.id}] {check.message}")
            )
    warnings = list(resolved.warnings)
    problems: list[Problem] = []
    for p in collected.all():
        if _not_generated(p):
            warnings.append(f"{p.path}: {p.message}" + (f" ({p.hint})" if p.hint else ""))
        else:
            problems.append(p)
    return CheckReport(resolved, problems, list(dict.fromkeys(warnings)))
