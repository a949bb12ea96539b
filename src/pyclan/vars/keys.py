"""Who can read secrets: the admins' keys and one age key pair per machine.

- The admin's own private key: `$PYCLAN_AGE_KEY_FILE`, else `~/.config/pyclan/age.key`
  (an age identity file, created by `pyclan vars keygen`); when neither exists, the key sops
  uses (`$SOPS_AGE_KEY_FILE`, else `~/.config/sops/age/keys.txt`), so a Clan user's key works as is.
- Admin public keys: every `keys/admins/<user>.pub` of the clan (committed).
- Machine keys, created on demand: the public half in `keys/machines/<m>.pub`, the private
  half at `vars/per-machine/<m>/.machine-key/key.age`, encrypted to the admins (so deploy or an
  admin can hand it to the machine, and an admin change re-encrypts it like any secret).
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from pyclan.vars import age
from pyclan.vars.layout import (
    MACHINE_KEY_DIR,
    MACHINE_KEY_FILE,
    MACHINE_KEY_RECIPIENTS,
    admins_dir,
    machine_key_path,
    machine_pub_path,
    vars_error,
)
from pyclan.vars.store import atomic_write, swap_in

KEY_FILE_ENV = "PYCLAN_AGE_KEY_FILE"
KEYGEN_HINT = "run `pyclan vars keygen` (or point $PYCLAN_AGE_KEY_FILE at your age key)"
NOT_RECIPIENT_HINT = (
    "your age key is not (or no longer) a recipient; make sure keys/admins/ holds your public key "
    "(`pyclan vars keygen`) and ask an admin who can read the secrets to run `pyclan vars generate`"
)


def admin_key_file() -> Path:
    """pyclan's key file if set or present, else an existing sops key file, else pyclan's default (to create)."""
    env = os.environ.get(KEY_FILE_ENV)
    if env:
        return Path(env).expanduser()
    own = Path.home() / ".config" / "pyclan" / "age.key"
    if own.exists():
        return own
    from pyclan.vars.sops import KEY_FILE_ENV as SOPS_KEY_FILE_ENV
    from pyclan.vars.sops import default_key_file

    sops_env = os.environ.get(SOPS_KEY_FILE_ENV)
    for candidate in (Path(sops_env).expanduser() if sops_env else None, default_key_file()):
        if candidate is not None and candidate.is_file():
            return candidate
    return own


def load_admin_identities() -> list[age.Identity]:
    """The current user's private age keys; a clear error if there are none."""
    path = admin_key_file()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise vars_error("keys", f"no admin age key at {path}", hint=KEYGEN_HINT) from None
    ids = age.parse_identities(text, str(path))
    if not ids:
        raise vars_error(str(path), "the age key file holds no key", hint=KEYGEN_HINT)
    return ids


def default_user() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or "root"


@dataclass(frozen=True)
class KeygenResult:
    user: str
    public_key: str
    key_file: str
    created_key: bool  # False: an existing key file was reused
    registered: str  # the clan file holding the public key (relative to the clan)

    def to_json(self) -> dict[str, object]:
        return {
            "user": self.user, "publicKey": self.public_key, "keyFile": self.key_file,
            "createdKey": self.created_key, "registered": self.registered,
        }


def keygen(clan_dir: Path, user: str | None = None, force: bool = False) -> KeygenResult:
    """Create (or reuse) the admin key and register its public half as `keys/admins/<user>.pub`."""
    user = user or default_user()
    if not user or "/" in user or user.startswith("."):
        raise vars_error("--user", f"invalid admin name {user!r}", hint="use a plain user name like 'alice'")
    path = admin_key_file()
    created = False
    if path.exists():
        ids = load_admin_identities()
    else:
        ident = age.generate_identity()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        text = f"# created: {stamp}\n# public key: {age.public_key(ident)}\n{age.secret_key(ident)}\n"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, text.encode(), mode=0o600)
        ids, created = [ident], True
    pub = age.public_key(ids[0])
    target = admins_dir(clan_dir) / f"{user}.pub"
    if target.exists() and not force:
        existing = age.parse_recipient(target.read_text(), str(target))
        if existing != pub:
            raise vars_error(
                str(target.relative_to(clan_dir)),
                f"admin '{user}' is already registered with another key ({existing[:16]}…)",
                hint="pass --force to replace it (secrets are re-encrypted on the next `pyclan vars generate`)",
            )
    atomic_write(target, f"{pub}\n".encode())
    return KeygenResult(user, pub, str(path), created, str(target.relative_to(clan_dir)))


def admin_recipients(clan_dir: Path) -> dict[str, str]:
    """Admin name → public key, from `keys/admins/*.pub`; at least one is required."""
    folder = admins_dir(clan_dir)
    found: dict[str, str] = {}
    if folder.is_dir():
        for pub in sorted(folder.glob("*.pub")):
            found[pub.stem] = age.parse_recipient(pub.read_text(), str(pub.relative_to(clan_dir)))
    if not found:
        raise vars_error("keys/admins", "the clan has no admin keys: secrets would be readable by nobody",
                         hint=KEYGEN_HINT)
    return found


def machine_public_key(clan_dir: Path, machine: str) -> str | None:
    path = machine_pub_path(clan_dir, machine)
    if not path.is_file():
        return None
    return age.parse_recipient(path.read_text(), str(path.relative_to(clan_dir)))


def ensure_machine_key(clan_dir: Path, machine: str, admins: list[str]) -> str:
    """The machine's public key, creating the key pair on first use."""
    existing = machine_public_key(clan_dir, machine)
    if existing is not None:
        return existing
    ident = age.generate_identity()
    pub = age.public_key(ident)
    # private half first: a kill in between leaves no public key, so the pair is made again
    write_machine_key(clan_dir, machine, age.encrypt(age.secret_key(ident).encode() + b"\n", admins), admins)
    atomic_write(machine_pub_path(clan_dir, machine), f"{pub}\n".encode())
    return pub


def write_machine_key(clan_dir: Path, machine: str, ciphertext: bytes, recipients: list[str]) -> None:
    """Replace the encrypted private key and its recipient list together (one folder swap)."""
    target = machine_key_path(clan_dir, machine).parent
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
    try:
        tmp.mkdir()
        (tmp / MACHINE_KEY_FILE).write_bytes(ciphertext)
        (tmp / MACHINE_KEY_RECIPIENTS).write_text("".join(f"{r}\n" for r in sorted(recipients)))
        swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def machine_key_recipients(clan_dir: Path, machine: str) -> tuple[str, ...] | None:
    """The recipients recorded for a machine's private key, None if there is no key."""
    path = machine_key_path(clan_dir, machine)
    if not path.is_file():
        return None
    try:
        return tuple(sorted((path.parent / MACHINE_KEY_RECIPIENTS).read_text().split()))
    except FileNotFoundError:
        return ()


def machine_identity(clan_dir: Path, machine: str, admin_ids: list[age.Identity]) -> age.Identity:
    """Decrypt a machine's private key with the admin's key (tests, deploy)."""
    path = machine_key_path(clan_dir, machine)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise vars_error(
            f"machines.{machine}", f"machine '{machine}' has no private key in the clan ({MACHINE_KEY_DIR}/)",
            hint=f"run `pyclan vars generate {machine}` (it creates machine keys on demand)",
        ) from None
    plain = age.decrypt(data, admin_ids, path, f"machines.{machine}", hint=NOT_RECIPIENT_HINT)
    ids = age.parse_identities(plain.decode(), str(path))
    if len(ids) != 1:
        raise vars_error(str(path), "a machine key file must hold exactly one age identity")
    return ids[0]
