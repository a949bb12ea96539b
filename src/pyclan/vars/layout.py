"""Where vars live in the clan directory (R12.2, R12.3), and the error every vars failure uses.

This module is the one place that spells the layout of `vars/` and `keys/`. A generator is
identified by its name and placement: per machine (`per-machine/<m>/<gen>`) or shared
(`shared/<gen>`). Inside a generator folder, each file is a folder holding either `value`
(public, in clear) or `secret.age` plus `secret.age.recipients` (the public age keys it is
encrypted to, so a change of recipients can be detected without decrypting). The folder also
holds `.validation-hash`, the hash of the generator's definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyclan.errors import ClanError

VARS_DIR = "vars"
SHARED_DIR = "shared"  # vars/shared/<gen>
PER_MACHINE_DIR = "per-machine"  # vars/per-machine/<m>/<gen>
KEYS_DIR = "keys"
ADMINS_DIR = "admins"  # keys/admins/<user>.pub
MACHINE_KEYS_DIR = "machines"  # keys/machines/<m>.pub
ADMINS_REL = f"{KEYS_DIR}/{ADMINS_DIR}"
MACHINE_KEYS_REL = f"{KEYS_DIR}/{MACHINE_KEYS_DIR}"
VALUE = "value"
SECRET = "secret.age"
RECIPIENTS = "secret.age.recipients"
VALIDATION_HASH = ".validation-hash"
SET_BY_HAND = ".set-by-hand"  # files of the generator set with `vars set` since it last ran
MACHINE_KEY_DIR = ".machine-key"  # vars/per-machine/<m>/.machine-key/key.age: the machine's private key
MACHINE_KEY_FILE = "key.age"
MACHINE_KEY_RECIPIENTS = "key.age.recipients"
# Clan's sops backend, as found in a clan that pyclan imports (`vars import --from-clan`)
CLAN_SECRET = "secret"  # <file>/secret is a sops JSON document
CLAN_MACHINE_LINKS = "machines"  # <file>/machines/<m>: the machines that may read the secret
CLAN_LINK_DIRS = (CLAN_MACHINE_LINKS, "users", "groups")  # per-secret recipient links into sops/


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
        return f"{placement_rel(self.machine)}/{self.name}"

    @property
    def label(self) -> str:
        """How messages name it: `<machine>/<gen>` or `shared/<gen>`."""
        return f"shared/{self.name}" if self.machine is None else f"{self.machine}/{self.name}"

    def __str__(self) -> str:
        return self.label


def placement_rel(machine: str | None) -> str:
    """The folder below `vars/` that holds a machine's generators (None: the shared ones)."""
    return SHARED_DIR if machine is None else f"{PER_MACHINE_DIR}/{machine}"


def gen_dir(clan_dir: Path, key: GenKey) -> Path:
    return clan_dir / VARS_DIR / key.rel_dir


def value_path(clan_dir: Path, key: GenKey, file: str) -> Path:
    """Where a public var's value is kept in clear."""
    return gen_dir(clan_dir, key) / file / VALUE


def secret_path(clan_dir: Path, key: GenKey, file: str) -> Path:
    """Where a secret var is kept, age-encrypted (its recipients in `RECIPIENTS` beside it)."""
    return gen_dir(clan_dir, key) / file / SECRET


def shared_root(clan_dir: Path) -> Path:
    return clan_dir / VARS_DIR / SHARED_DIR


def per_machine_root(clan_dir: Path) -> Path:
    return clan_dir / VARS_DIR / PER_MACHINE_DIR


def machine_vars_rel(machine: str) -> str:
    """The machine's own folder below the clan (its generators and its private key)."""
    return f"{VARS_DIR}/{placement_rel(machine)}"


def machine_key_dir_rel(machine: str) -> str:
    return f"{machine_vars_rel(machine)}/{MACHINE_KEY_DIR}"


def machine_key_path(clan_dir: Path, machine: str) -> Path:
    return clan_dir / machine_key_dir_rel(machine) / MACHINE_KEY_FILE


def machine_pub_rel(machine: str) -> str:
    return f"{MACHINE_KEYS_REL}/{machine}.pub"


def machine_pub_path(clan_dir: Path, machine: str) -> Path:
    return clan_dir / machine_pub_rel(machine)


def admin_pub_rel(user: str) -> str:
    return f"{ADMINS_REL}/{user}.pub"


def machine_owned(machine: str) -> tuple[str, ...]:
    """What of `vars/` and `keys/` belongs to one machine alone (removed with the machine)."""
    return machine_vars_rel(machine), machine_pub_rel(machine)


def admins_dir(clan_dir: Path) -> Path:
    return clan_dir / ADMINS_REL


def vars_error(path: str, message: str, hint: str | None = None) -> ClanError:
    """The one error kind of this package; `path` names machine/generator/file."""
    return ClanError.single("vars-error", path, message, hint=hint)


def generate_hint(machine: str | None) -> str:
    return f"run `pyclan vars generate {machine}`" if machine else "run `pyclan vars generate`"
