"""Secrets for deploy: digests for the manifest, values for the upload (vars API).

The manifest must change when a secret changes, yet say nothing about its value: its digest
is the sha256 of the age-encrypted file in the clan (random per encryption). Values are
decrypted on the controller only when a host actually receives a new generation.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from pyclan import safepath
from pyclan.config.machine_config import MachineConfig, SecretFileSpec
from pyclan.errors import ClanError
from pyclan.vars.layout import GenKey, secret_path

if TYPE_CHECKING:
    from pathlib import Path

    from pyclan.clan import Clan


def _key(machine: str, spec: SecretFileSpec) -> GenKey:
    return GenKey(spec.generator, None if spec.shared else machine)


def secret_digests(clan_dir: Path, machine: str, config: MachineConfig) -> dict[str, str]:
    """Host path → sha256 of the encrypted var; secrets not generated yet are left out."""
    out: dict[str, str] = {}
    for path, spec in config.secrets.items():
        file = secret_path(clan_dir, _key(machine, spec), spec.file)
        try:
            data = safepath.read_bytes(clan_dir, file)  # never read through a symlink (issue 10 item 2)
        except OSError as exc:  # e.g. a generator name longer than a file name may be
            raise ClanError.single(
                "vars-error", f"{spec.generator}/{spec.file}",
                f"cannot read the encrypted var of machine '{machine}': {exc.strerror or exc}",
                hint="generator and file names must be usable as file names (at most 255 bytes each)",
            ) from None
        if data is not None:
            out[path] = hashlib.sha256(data).hexdigest()
    return out


def secret_values(clan: Clan, machine: str, config: MachineConfig) -> dict[str, bytes]:
    """`<generator>/<file>` → decrypted value, for every secret the machine receives."""
    from pyclan.vars.api import decrypt_secret

    return {
        f"{spec.generator}/{spec.file}": decrypt_secret(clan, machine, spec.generator, spec.file)
        for spec in config.secrets.values()
    }
