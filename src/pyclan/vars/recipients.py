"""Keeping secrets encrypted to exactly the right keys as admins and machines come and go.

Each secret's recipient list is stored beside it; when it differs from the wanted set
(every admin + every machine deploying the file) the secret is decrypted with the admin key
and encrypted again, in the same atomic folder swap as a generator run. Machine private keys
(encrypted to the admins) are kept in step the same way.

Removing a recipient only protects values written afterwards: old ciphertexts stay in the
history of the clan's repository. Rotate the values (`vars generate --regenerate`) to revoke.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pyclan.errors import ClanError, Problem
from pyclan.vars import age, keys
from pyclan.vars.context import VarsContext
from pyclan.vars.layout import GenKey, machine_key_path
from pyclan.vars.store import StoredSecret


@dataclass
class Reencryption:
    files: list[str] = field(default_factory=list)  # "<label>/<file>" re-encrypted
    machine_keys: list[str] = field(default_factory=list)  # machines whose private key was re-encrypted
    problems: list[Problem] = field(default_factory=list)  # secrets the admin key could not open


def _cannot(what: str) -> Problem:
    return Problem(
        "vars-error", what, f"cannot re-encrypt {what}: your age key is not one of its recipients",
        hint=keys.NOT_RECIPIENT_HINT,
    )


def reencrypt(ctx: VarsContext, gen_keys: Iterable[GenKey], machines: Iterable[str]) -> Reencryption:
    """Re-encrypt every stored secret of `gen_keys`, and the keys of `machines`, whose recipients changed."""
    result = Reencryption()
    for key in gen_keys:
        node = ctx.node(key)
        updates: dict[str, bytes | StoredSecret] = {}
        for f, vf in sorted(node.generator.files.items()):
            if not vf.secret:
                continue
            stored = ctx.store.secret(key, f)
            if stored is None:
                continue
            wanted = ctx.wanted_recipients(key, f)
            if stored.recipients == wanted:
                continue
            plain = age.try_decrypt(stored.ciphertext, ctx.identities())
            if plain is None:
                result.problems.append(_cannot(f"{key.label}/{f}"))
                continue
            updates[f] = StoredSecret(age.encrypt(plain, wanted), wanted)
            result.files.append(f"{key.label}/{f}")
        if updates:
            ctx.store.write(key, updates, None, replace_all=False)
    for m in machines:
        stored_for = keys.machine_key_recipients(ctx.clan_dir, m)
        if stored_for is None or stored_for == tuple(ctx.admins):
            continue
        path = machine_key_path(ctx.clan_dir, m)
        plain = age.try_decrypt(path.read_bytes(), ctx.identities())
        if plain is None:
            result.problems.append(_cannot(f"the age key of machine '{m}'"))
            continue
        keys.write_machine_key(ctx.clan_dir, m, age.encrypt(plain, ctx.admins), ctx.admins)
        result.machine_keys.append(m)
    return result


def raise_problems(result: Reencryption) -> None:
    if result.problems:
        raise ClanError(result.problems)
