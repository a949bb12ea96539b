"""A clan directory opened for work: load → resolve → evaluate, each stage computed once.

Every command (CLI or JSON API) starts here, so they all see the same pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pyclan.evaluate.machines import Evaluator
from pyclan.evaluate.resolve import ResolvedInventory, resolve
from pyclan.inventory.load import LoadedInventory, find_clan_dir, load_inventory
from pyclan.services.registry import Provider, ServiceRegistry


@dataclass
class Runtime:
    """Process-wide defaults set by the CLI's global options (`-C`, `--override-input`)."""

    flake: Path | None = None
    input_overrides: dict[str, Path] = field(default_factory=dict)
    debug: bool = False


RUNTIME = Runtime()


@dataclass
class Clan:
    dir: Path
    loaded: LoadedInventory
    input_overrides: dict[str, Path] = field(default_factory=dict)

    @cached_property
    def registry(self) -> ServiceRegistry:
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
        return resolve(self.loaded, self.registry)

    @cached_property
    def evaluator(self) -> Evaluator:
        return Evaluator(self.resolved)


def open_clan(flake: Path | None = None, input_overrides: dict[str, Path] | None = None) -> Clan:
    """Find the clan directory (flake, $CLAN_DIR or upwards from cwd) and load its inventory.

    Unset arguments fall back to the CLI's global options (`RUNTIME`).
    """
    clan_dir = find_clan_dir(flake or RUNTIME.flake)
    overrides = dict(RUNTIME.input_overrides if input_overrides is None else input_overrides)
    return Clan(dir=clan_dir, loaded=load_inventory(clan_dir), input_overrides=overrides)
