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
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from pyclan import safepath
from pyclan.vars import age
from pyclan.vars.layout import (
    ADMINS_REL,
    MACHINE_KEY_DIR,
    MACHINE_KEY_FILE,
    MACHINE_KEY_RECIPIENTS,
    admins_dir,
    machine_key_dir_rel,
    machine_key_path,
    machine_pub_path,
    machine_pub_rel,
    vars_error,
)
from pyclan.vars.store import atomic_write, swap_in

KEY_FILE_ENV = "PYCLAN_AGE_KEY_FILE"
KEYGEN_HINT = "run `pyclan vars keygen` (or point $PYCLAN_AGE_KEY_FILE at your age key)"
NOT_RECIPIENT_HINT = (
    f"your age key is not (or no longer) a recipient; make sure {ADMINS_REL}/ holds your public key "
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
    check_key_file_mode(path)
    ids = age.parse_identities(text, str(path))
    if not ids:
        raise vars_error(str(path), "the age key file holds no key", hint=KEYGEN_HINT)
    return ids


def check_key_file_mode(path: Path) -> None:
    """Refuse a private key others may read (as OpenSSH does: "UNPROTECTED PRIVATE KEY FILE")."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return
    if mode & 0o077:
        raise vars_error(
            str(path), f"UNPROTECTED PRIVATE KEY FILE: permissions {mode:04o} let other users read your admin "
            "age key; it is ignored",
            hint=f"`chmod 600 {path}` (and consider the key leaked if others could read it)",
        )


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) as folders only their owner can enter, whatever the umask."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        os.mkdir(folder, 0o700)
        os.chmod(folder, 0o700)


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
        private_dir(path.parent)
        atomic_write(path, text.encode(), mode=0o600)
        ids, created = [ident], True
    pub = age.public_key(ids[0])
    target = admins_dir(clan_dir) / f"{user}.pub"
    registered = safepath.read_text(clan_dir, target)
    if registered is not None and not force:
        existing = age.parse_recipient(registered, str(target.relative_to(clan_dir)))
        if existing != pub:
            raise vars_error(
                str(target.relative_to(clan_dir)),
                f"admin '{user}' is already registered with another key ({existing[:16]}…)",
                hint="pass --force to replace it (secrets are re-encrypted on the next `pyclan vars generate`)",
            )
    atomic_write(target, f"{pub}\n".encode(), root=clan_dir)
    return KeygenResult(user, pub, str(path), created, str(target.relative_to(clan_dir)))


def admin_recipients(clan_dir: Path) -> dict[str, str]:
    """Admin name → public key, from `keys/admins/*.pub`; at least one is required."""
    folder = admins_dir(clan_dir)
    found: dict[str, str] = {}
    if safepath.is_dir(clan_dir, folder):
        for pub in sorted(folder.glob("*.pub")):
            text = safepath.read_text(clan_dir, pub)
            if text is not None:
                found[pub.stem] = age.parse_recipient(text, str(pub.relative_to(clan_dir)))
    if not found:
        raise vars_error(ADMINS_REL, "the clan has no admin keys: secrets would be readable by nobody",
                         hint=KEYGEN_HINT)
    return found


def machine_public_key(clan_dir: Path, machine: str) -> str | None:
    path = machine_pub_path(clan_dir, machine)
    text = safepath.read_text(clan_dir, path)
    if text is None:
        return None
    return age.parse_recipient(text, str(path.relative_to(clan_dir)))


def ensure_machine_key(clan_dir: Path, machine: str, admins: list[str]) -> str:
    """The machine's public key, creating the key pair on first use."""
    existing = machine_public_key(clan_dir, machine)
    if existing is not None:
        return existing
    ident = age.generate_identity()
    pub = age.public_key(ident)
    # private half first: a kill in between leaves no public key, so the pair is made again
    key_dir = machine_key_path(clan_dir, machine).parent
    fresh_parent = not os.path.lexists(key_dir.parent)
    write_machine_key(clan_dir, machine, age.encrypt(age.secret_key(ident).encode() + b"\n", admins), admins)
    try:
        atomic_write(machine_pub_path(clan_dir, machine), f"{pub}\n".encode(), root=clan_dir)
    except BaseException:  # a failed command leaves no half of a pair behind
        safepath.remove_tree(clan_dir, key_dir.parent if fresh_parent else key_dir)
        raise
    return pub


def write_machine_key(clan_dir: Path, machine: str, ciphertext: bytes, recipients: list[str]) -> None:
    """Replace the encrypted private key and its recipient list together (one folder swap)."""
    target = machine_key_path(clan_dir, machine).parent
    safepath.make_dirs(clan_dir, target.parent, 0o755)
    safepath.check(clan_dir, target)
    tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
    try:
        os.mkdir(tmp, 0o700)
        os.chmod(tmp, 0o700)
        (tmp / MACHINE_KEY_FILE).write_bytes(ciphertext)
        (tmp / MACHINE_KEY_RECIPIENTS).write_text("".join(f"{r}\n" for r in sorted(recipients)))
        swap_in(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise safepath.os_error(clan_dir, target, exc, f"store the age key of machine '{machine}'") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def machine_key_recipients(clan_dir: Path, machine: str) -> tuple[str, ...] | None:
    """The recipients recorded for a machine's private key, None if there is no key."""
    path = machine_key_path(clan_dir, machine)
    if not safepath.is_file(clan_dir, path):
        return None
    text = safepath.read_text(clan_dir, path.parent / MACHINE_KEY_RECIPIENTS)
    return tuple(sorted((text or "").split()))


def machine_identity(clan_dir: Path, machine: str, admin_ids: list[age.Identity]) -> age.Identity:
    """Decrypt a machine's private key with the admin's key (tests, deploy)."""
    path = machine_key_path(clan_dir, machine)
    data = safepath.read_bytes(clan_dir, path)
    if data is None:
        raise vars_error(
            f"machines.{machine}", f"machine '{machine}' has no private key in the clan ({MACHINE_KEY_DIR}/)",
            hint=f"run `pyclan vars generate {machine}` (it creates machine keys on demand)",
        )
    plain = age.decrypt(data, admin_ids, path, f"machines.{machine}", hint=NOT_RECIPIENT_HINT)
    ids = age.parse_identities(plain.decode(), str(path))
    if len(ids) != 1:
        raise vars_error(str(path), "a machine key file must hold exactly one age identity")
    return ids[0]


def verify_machine_key(clan_dir: Path, machine: str, admin_ids: list[age.Identity]) -> str:
    """`keys/machines/<m>.pub`, after proving it is the public half of the private key in vars.

    A replaced `.pub` (someone wants the machine's secrets encrypted to their key) or a lost
    private key is an error: secrets are never encrypted to a key nobody can vouch for.
    """
    pub = machine_public_key(clan_dir, machine)
    rel, key_dir = machine_pub_rel(machine), machine_key_dir_rel(machine)
    fresh = (f"to give the machine a new key pair on purpose, remove both {rel} and "
             f"{key_dir}/ and run `pyclan vars generate --yes`")
    if pub is None:
        raise vars_error(rel, f"machine '{machine}' has no public key", hint=fresh)
    if not safepath.is_file(clan_dir, machine_key_path(clan_dir, machine)):
        raise vars_error(
            f"{key_dir}/{MACHINE_KEY_FILE}",
            f"the private age key of machine '{machine}' is missing, but {rel} exists",
            hint=f"restore it from git (`git checkout -- {key_dir}`), or {fresh}",
        )
    held = age.public_key(machine_identity(clan_dir, machine, admin_ids))
    if held != pub:
        raise vars_error(
            rel, f"{rel} ({pub[:16]}…) is not the public half of machine '{machine}'s private key "
            f"({held[:16]}…): it was replaced; pyclan will not encrypt the machine's secrets to it",
            hint=f"restore it (`git checkout -- {rel}`, or write {held} into it), or {fresh}",
        )
    return pub
