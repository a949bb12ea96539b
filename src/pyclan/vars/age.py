"""age encryption (pyrage, X25519 only): parsing keys, encrypting to recipients, decrypting.

Kept apart so the rest of the package deals in plain strings (public keys) and bytes, and
every pyrage failure becomes a `vars-error` that says which key or file is at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import pyrage
from pyrage import x25519

from pyclan.vars.layout import vars_error

Identity: TypeAlias = Any  # pyrage.x25519.Identity (pyrage ships no type hints)


def generate_identity() -> Identity:
    return x25519.Identity.generate()


def public_key(identity: Identity) -> str:
    return str(identity.to_public())


def secret_key(identity: Identity) -> str:
    return str(identity)


def parse_identities(text: str, where: str) -> list[Identity]:
    """All `AGE-SECRET-KEY-…` lines of an age identity file (comments and blanks ignored)."""
    found: list[Identity] = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError as exc:
            raise vars_error(
                f"{where}:{n}", f"not an age X25519 identity ({exc})",
                hint="the file must hold lines like `AGE-SECRET-KEY-1…` as written by `pyclan vars keygen`",
            ) from None
    return found


def parse_recipient(text: str, where: str) -> str:
    """The one public key (`age1…`) of a `.pub` file, validated; comments and blanks ignored."""
    keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(keys) != 1:
        raise vars_error(where, f"expected exactly one age public key (age1…), found {len(keys)} lines")
    try:
        x25519.Recipient.from_str(keys[0])
    except pyrage.RecipientError as exc:
        raise vars_error(where, f"not an age X25519 public key: {keys[0][:20]!r} ({exc})") from None
    return keys[0]


def encrypt(data: bytes, recipients: Iterable[str]) -> bytes:
    parsed = [x25519.Recipient.from_str(r) for r in sorted(set(recipients))]
    if not parsed:
        raise vars_error("keys", "refusing to encrypt to nobody", hint="run `pyclan vars keygen`")
    return bytes(pyrage.encrypt(data, parsed))


def try_decrypt(data: bytes, identities: Sequence[Identity]) -> bytes | None:
    """The plaintext, or None when none of the identities is a recipient (or data is damaged)."""
    if not identities:
        return None
    try:
        return bytes(pyrage.decrypt(data, list(identities)))
    except pyrage.DecryptError:
        return None


def decrypt(data: bytes, identities: Sequence[Identity], path: Path, what: str, hint: str) -> bytes:
    plain = try_decrypt(data, identities)
    if plain is None:
        raise vars_error(what, f"cannot decrypt {path}: none of the given age keys is a recipient", hint=hint)
    return plain
