"""What evaluation may know about vars: declared generators, public values, secret paths.

Public values are read from the clan's `vars/` folder in clear; secret values are never read
during evaluation (R12.7): a config refers to the path where deploy will place the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyclan import safepath
from pyclan.config.generators import Generator
from pyclan.config.machine_config import Origin
from pyclan.errors import ClanError
from pyclan.vars.layout import GenKey, value_path

SECRETS_DIR_ON_HOST = "/var/lib/pyclan/secrets"
NOT_GENERATED = "has not been generated yet"  # in the message of a var read before `vars generate`


@dataclass(frozen=True)
class DeclaredGenerator:
    generator: Generator
    origin: Origin


def secret_host_path(generator: str, file: str) -> str:
    return f"{SECRETS_DIR_ON_HOST}/{generator}/{file}"


def public_value_path(clan_dir: Path, generator: Generator, file: str, machine: str) -> Path:
    return value_path(clan_dir, GenKey(generator.name, None if generator.share else machine), file)


class VarsView:
    """Implements `VarsReader` for one machine over the declared generators of all machines."""

    def __init__(self, clan_dir: Path, machine: str, declared: Mapping[str, Mapping[str, DeclaredGenerator]]) -> None:
        self.clan_dir = clan_dir
        self.machine = machine
        self.declared = declared

    def _generator(self, name: str, file: str, machine: str) -> Generator:
        gens = self.declared.get(machine, {})
        if name not in gens:
            raise ClanError.single(
                "vars-error",
                f"machines.{machine}",
                f"machine '{machine}' declares no vars generator '{name}'"
                + (f"; it declares: {', '.join(sorted(gens))}" if gens else ""),
            )
        gen = gens[name].generator
        if file not in gen.files:
            raise ClanError.single(
                "vars-error",
                f"{name}/{file}",
                f"generator '{name}' declares no file '{file}'; it declares: {', '.join(sorted(gen.files))}",
            )
        return gen

    def has(self, generator: str, file: str, machine: str | None = None) -> bool:
        target = machine or self.machine
        gen = self._generator(generator, file, target)
        return safepath.is_file(self.clan_dir, public_value_path(self.clan_dir, gen, file, target))

    def public(self, generator: str, file: str, machine: str | None = None) -> str:
        target = machine or self.machine
        gen = self._generator(generator, file, target)
        if gen.files[file].secret:
            raise ClanError.single(
                "vars-error",
                f"{generator}/{file}",
                "Cannot access value of secret file during evaluation",
                hint="use ctx.vars.secret_path(...) and let deploy place the secret on the host",
            )
        path = public_value_path(self.clan_dir, gen, file, target)
        data = safepath.read_bytes(self.clan_dir, path)  # never through a symlink (issue 10 item 2)
        if data is None:
            raise ClanError.single(
                "vars-error",
                f"{generator}/{file}",
                f"var '{generator}/{file}' of machine '{target}' {NOT_GENERATED}",
                hint=f"run `pyclan vars generate {target}`",
            )
        return data.decode(errors="replace")

    def secret_path(self, generator: str, file: str) -> str:
        gen = self._generator(generator, file, self.machine)
        if not gen.files[file].secret:
            raise ClanError.single(
                "vars-error", f"{generator}/{file}", "this var is public: read it with ctx.vars.public(...)"
            )
        return secret_host_path(generator, file)
