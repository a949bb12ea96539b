"""Where vars live in the clan directory (R12.2, R12.3), and the error every vars failure uses.

A generator is identified by its name and placement: per machine (`per-machine/<m>/<gen>`) or
shared (`shared/<gen>`). Inside a generator folder, each file is a folder holding either
`value` (public, in clear) or `secret.age` plus `secret.age.recipients` (the public age keys it
is encrypted to, so a change of recipients can be detected without decrypting). The folder
also holds `.validation-hash`, the hash of the generator's definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyclan.errors import ClanError

VARS_DIR = "vars"
KEYS_DIR = "keys"
VALUE = "value"
SECRET = "secret.age"
RECIPIENTS = "secret.age.recipients"
VALIDATION_HASH = ".validation-hash"
MACHINE_KEY_DIR = ".machine-key"  # vars/per-machine/<m>/.machine-key/key.age: the machine's private key
MACHINE_KEY_FILE = "key.age"
MACHINE_KEY_RECIPIENTS = "key.age.recipients"


@dataclass(frozen=True)
class GenKey:
    """A generator's identity: its name and placement (`machine` None = shared)."""

    name: str
    machine: str | None = None

    def __lt__(self, other: GenKey) -> bool:
        """Sorted: shared generators first, then by machine, then by name."""
        return (self.machine or "", self.name) < (other.machine or "", other.name)

    @property
    def shared(self) -> bool:
        return self.machine is None

    @property
    def rel_dir(self) -> str:
        """The folder below `vars/`, as in Clan."""
        return f"shared/{self.name}" if self.machine is None else f"per-machine/{self.machine}/{self.name}"

    @property
    def label(self) -> str:
        """How messages name it: `<machine>/<gen>` or `shared/<gen>`."""
        return f"shared/{self.name}" if self.machine is None else f"{self.machine}/{self.name}"

    def __str__(self) -> str:
        return self.label


def gen_dir(clan_dir: Path, key: GenKey) -> Path:
    return clan_dir / VARS_DIR / key.rel_dir


def machine_key_path(clan_dir: Path, machine: str) -> Path:
    return clan_dir / VARS_DIR / "per-machine" / machine / MACHINE_KEY_DIR / MACHINE_KEY_FILE


def machine_pub_path(clan_dir: Path, machine: str) -> Path:
    return clan_dir / KEYS_DIR / "machines" / f"{machine}.pub"


def admins_dir(clan_dir: Path) -> Path:
    return clan_dir / KEYS_DIR / "admins"


def vars_error(path: str, message: str, hint: str | None = None) -> ClanError:
    """The one error kind of this package; `path` names machine/generator/file."""
    return ClanError.single("vars-error", path, message, hint=hint)


def generate_hint(machine: str | None) -> str:
    return f"run `pyclan vars generate {machine}`" if machine else "run `pyclan vars generate`"
