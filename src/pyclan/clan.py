"""A clan directory opened for work: load → resolve → evaluate, each stage computed once.

Every command (CLI or JSON API) starts here, so they all see the same pipeline. Nothing here
is process-wide: whoever needs a clan opens one with its directory and input overrides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pyclan.errors import ClanError, Problem, did_you_mean, unknown_machine
from pyclan.inventory.load import LoadedInventory, find_clan_dir, load_inventory

if TYPE_CHECKING:
    from pyclan.evaluate.evaluator import Evaluator
    from pyclan.evaluate.resolve import ResolvedInventory
    from pyclan.services.registry import ServiceRegistry


def unknown_tags(wanted: Sequence[str], known: Iterable[str]) -> ClanError | None:
    """A `--tags` filter naming tags no machine carries: one problem each, with did-you-mean."""
    names = set(known)
    problems = [
        Problem(
            "unknown-tag",
            "--tags",
            f"no machine carries the tag '{tag}'",
            hint=did_you_mean(tag, names) or f"known tags: {', '.join(sorted(names)) or 'none'}",
        )
        for tag in dict.fromkeys(wanted)
        if tag not in names
    ]
    return ClanError(problems) if problems else None


@dataclass
class Clan:
    dir: Path
    loaded: LoadedInventory
    input_overrides: dict[str, Path] = field(default_factory=dict)

    @cached_property
    def registry(self) -> ServiceRegistry:
        from pyclan.services.registry import Provider, ServiceRegistry

        inputs: dict[str, Provider] = {}
        bundled: Provider | None = None
        if self.loaded.inventory.inputs or self.input_overrides:
            from pyclan.inputs import providers_for

            inputs = dict(providers_for(self.dir, self.loaded.inventory.inputs, self.input_overrides))
        if "clan-core" in self.input_overrides:
            # the override (PATH/services, a pyclan checkout's library, or PATH) replaces the bundled library
            bundled = inputs.pop("clan-core", None)
        return ServiceRegistry.for_clan(self.dir, inputs, bundled=bundled)

    @cached_property
    def resolved(self) -> ResolvedInventory:
        from pyclan.evaluate.resolve import resolve

        return resolve(self.loaded, self.registry)

    @cached_property
    def evaluator(self) -> Evaluator:
        from pyclan.evaluate.evaluator import Evaluator

        return Evaluator(self.resolved)

    def require_machines(self, names: Iterable[str]) -> None:
        """Raise the one 'unknown machine' error for every name that is not in the inventory."""
        known = self.loaded.inventory.machines
        problems = [unknown_machine(n, known) for n in dict.fromkeys(names) if n not in known]
        if problems:
            raise ClanError(problems)

    def select_machines(self, names: Sequence[str] = (), tags: Sequence[str] = (), all_: bool = False) -> list[str]:
        """Named machines, or those carrying every tag, or (no names, no tags) all of them."""
        self.require_machines(names)
        if names and (tags or all_):
            raise ClanError.single("usage-error", "machines", "give machine names, or --tags / --all, not both")
        if names:
            return list(dict.fromkeys(names))
        selected = sorted(self.loaded.inventory.machines)
        if tags:
            from pyclan.inventory.tags import effective_tags

            effective = effective_tags(self.loaded.inventory)
            bad = unknown_tags(tags, {t for ts in effective.values() for t in ts})
            if bad is not None:
                raise bad
            wanted = set(tags)
            selected = [m for m in selected if wanted <= set(effective.get(m, []))]
        return selected


def open_clan(flake: Path | str | None = None, input_overrides: dict[str, Path] | None = None) -> Clan:
    """Find the clan directory (flake, $CLAN_DIR or upwards from cwd) and load its inventory."""
    clan_dir = find_clan_dir(Path(flake) if flake is not None else None)
    return Clan(dir=clan_dir, loaded=load_inventory(clan_dir), input_overrides=dict(input_overrides or {}))
