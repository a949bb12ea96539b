"""Build: a machine's configuration → a content-addressed generation, stored in the cache.

A generation is the manifest (see `manifest.py`), the objects it names (sha256 → bytes), the
activation script and the line lists the script compares with the host. Equal configurations
give the same id; a build that is already in the cache is not written again. Secret values
never enter a build: only references and digests of their encrypted form.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyclan.build import activation
from pyclan.build.layout import MANIFEST, SCRIPT, builds_dir
from pyclan.build.manifest import Manifest, build_manifest, empty_manifest
from pyclan.build.secrets import secret_digests
from pyclan.config.machine_config import MachineConfig

if TYPE_CHECKING:
    from pyclan.clan import Clan


@dataclass(frozen=True)
class Generation:
    """One built generation of one machine (not yet on any host)."""

    machine: str
    manifest: Manifest
    objects: Mapping[str, bytes]
    config: MachineConfig | None = None  # what it was built from (to find the secrets to upload)

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def script(self) -> str:
        return activation.render(self.manifest)

    def folder_files(self) -> dict[str, bytes]:
        """The files of the generation's folder on the host (secrets are added at upload)."""
        files = {
            "id": f"{self.id}\n".encode(),
            MANIFEST: self.manifest.to_bytes(),
            SCRIPT: self.script.encode(),
        }
        files.update(activation.lists(self.manifest))
        return files

    @property
    def cache_path(self) -> Path:
        return builds_dir() / self.machine / self.id


def generation_of(
    machine: str, config: MachineConfig, secret_digests: Mapping[str, str], steps: bool = True
) -> Generation:
    """Pure: resolve `config` into a generation (raises ClanError on invalid configs); without
    `steps` (for validation only) the step digests the host compares are not computed."""
    manifest, objects = build_manifest(machine, config, secret_digests, activator=activation.ACTIVATOR, steps=steps)
    return Generation(machine, manifest, objects, config)


def empty_generation(machine: str) -> Generation:
    """Generation 0: nothing declared; activating it undoes everything pyclan did."""
    return Generation(machine, empty_manifest(machine, activation.ACTIVATOR), {}, MachineConfig())


def store(gen: Generation) -> Path:
    """Write the generation to the build cache (atomically; a no-op when already there)."""
    target = gen.cache_path
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{gen.id[:12]}.", dir=target.parent))
    try:
        for name, data in gen.folder_files().items():
            (tmp / name).write_bytes(data)
        os.chmod(tmp / SCRIPT, 0o755)
        (tmp / "objects").mkdir()
        for key, data in gen.objects.items():
            (tmp / "objects" / key).write_bytes(data)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # lost a race with another build of the same id: fine
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def build(clan: Clan, machine: str, *, write: bool = True) -> Generation:
    """Evaluate `machine` and build its generation (stored in the cache unless `write` is False)."""
    config = clan.evaluator.config(machine)
    gen = generation_of(machine, config, secret_digests(clan.dir, machine, config))
    if write:
        store(gen)
    return gen
