"""Keeping secrets encrypted to exactly the right keys as admins and machines come and go.

Each secret's recipient list is stored beside it; when it differs from the wanted set
(every admin + every machine deploying the file) the secret is decrypted with the admin key
and encrypted again, in the same atomic folder swap as a generator run. Machine private keys
(encrypted to the admins) are kept in step the same way.

Removing a recipient only protects values written afterwards: old ciphertexts stay in the
history of the clan's repository. Rotate the values (`vars generate --regenerate`) to revoke.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyclan import safepath
from pyclan.errors import ClanError, Problem
from pyclan.vars import age, keys
from pyclan.vars.context import VarsContext
from pyclan.vars.layout import ADMINS_REL, MACHINE_KEYS_REL, GenKey, machine_key_path, vars_error
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
    gen_keys = list(gen_keys)
    watched = _dependents(ctx, gen_keys)
    was_current = {k for k in watched if ctx.store.validation_hash(k) == ctx.hash_of(k)}
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
    # the same values under new ciphertexts: dependents that were up to date still are
    for k in ctx.graph.order(was_current):
        fresh = ctx.hash_of(k)
        if ctx.store.validation_hash(k) != fresh:
            ctx.store.write(k, {}, fresh, replace_all=False)
    for m in machines:
        stored_for = keys.machine_key_recipients(ctx.clan_dir, m)
        if stored_for is None or stored_for == tuple(ctx.admins):
            continue
        data = safepath.read_bytes(ctx.clan_dir, machine_key_path(ctx.clan_dir, m)) or b""
        plain = age.try_decrypt(data, ctx.identities())
        if plain is None:
            result.problems.append(_cannot(f"the age key of machine '{m}'"))
            continue
        keys.write_machine_key(ctx.clan_dir, m, age.encrypt(plain, ctx.admins), ctx.admins)
        result.machine_keys.append(m)
    return result


def raise_problems(result: Reencryption) -> None:
    if result.problems:
        raise ClanError(result.problems)


def _dependents(ctx: VarsContext, gen_keys: Iterable[GenKey]) -> set[GenKey]:
    out: set[GenKey] = set()
    for k in gen_keys:
        out |= ctx.graph.closure_dependents([k]) - {k}
    return out


@dataclass(frozen=True)
class RecipientChange:
    """One secret (or machine private key) whose set of recipients would change."""

    what: str  # "<label>/<file>" or "the age key of machine '<m>'"
    added: tuple[str, ...]
    removed: tuple[str, ...]


def planned_changes(ctx: VarsContext, gen_keys: Iterable[GenKey], machines: Iterable[str]) -> list[RecipientChange]:
    """Every stored secret of `gen_keys` and private key of `machines` that would be encrypted to
    a different set of keys than it is now (nothing is written)."""
    changes: list[RecipientChange] = []
    for key in dict.fromkeys(gen_keys):
        for f, vf in sorted(ctx.node(key).generator.files.items()):
            stored = ctx.store.secret(key, f) if vf.secret else None
            if stored is None:
                continue
            wanted = ctx.wanted_recipients(key, f, create=False)
            if stored.recipients != wanted:
                changes.append(RecipientChange(f"{key.label}/{f}", _minus(wanted, stored.recipients),
                                               _minus(stored.recipients, wanted)))
    for m in dict.fromkeys(machines):
        stored_for = keys.machine_key_recipients(ctx.clan_dir, m)
        if stored_for is None:
            continue
        admins = tuple(ctx.admins)
        if stored_for != admins:
            changes.append(RecipientChange(f"the age key of machine '{m}'", _minus(admins, stored_for),
                                           _minus(stored_for, admins)))
    return changes


def _minus(a: Iterable[str], b: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(a) - set(b)))


def _name(ctx: VarsContext, pub: str) -> str:
    if pub.startswith("<no key: "):
        return f"machine '{pub[9:-1]}' (a new key pair will be created)"
    return f"{ctx.describe_key(pub)} {pub}"


def render_changes(ctx: VarsContext, changes: list[RecipientChange]) -> str:
    """A `sops updatekeys`-like diff: per secret, `+` keys it would be encrypted to, `-` keys dropped."""
    lines: list[str] = []
    for c in changes:
        lines.append(f"  {c.what}:")
        lines += [f"    + {_name(ctx, k)}" for k in c.added]
        lines += [f"    - {_name(ctx, k)}" for k in c.removed]
    return "\n".join(lines)


def confirm_changes(ctx: VarsContext, changes: list[RecipientChange], yes: bool) -> None:
    """No silent re-keying: a change of recipients is shown, and needs --yes or a 'y' on a terminal."""
    if not changes or yes:
        return
    diff = render_changes(ctx, changes)
    head = f"the recipients of {len(changes)} secret(s) would change:\n{diff}"
    if sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write(head + "\nEncrypt them to these keys? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() in ("y", "yes"):
            return
        raise vars_error("recipients", "not confirmed: nothing was changed")
    raise vars_error(
        "recipients", head,
        hint=f"check that every added key belongs to an admin or machine you trust ({ADMINS_REL}/, "
        f"{MACHINE_KEYS_REL}/), then run again with --yes",
    )
