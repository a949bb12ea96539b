"""Reading a clan as Clan's sops backend left it: keys in `sops/`, vars in `vars/` (R12.3).

`sops/users/<u>/key.json` and `sops/machines/<m>/key.json` hold public age keys (an object or a
list of `{"publickey", "type"}`); a var is `vars/<rel_dir>/<file>/value` (public) or
`…/<file>/secret` (a sops document) with `machines/<m>`, `users/<u>`, `groups/<g>` links beside it,
and `vars/<rel_dir>/.validation-hash` holds Clan's hash when the generator has a `validation`.
Nothing here follows a symlink out of the clan or writes anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pyclan.errors import ClanError, Problem
from pyclan.vars import age, sops
from pyclan.vars.layout import (
    CLAN_LINK_DIRS,
    CLAN_MACHINE_LINKS,
    CLAN_SECRET,
    RECIPIENTS,
    SECRET,
    VALIDATION_HASH,
    VALUE,
)

SOPS_DIR = "sops"


def problem(path: Path | str, message: str, hint: str | None = None) -> Problem:
    return Problem("vars-error", str(path), message, hint=hint)


def clan_validation_hash(validation: Any) -> str | None:
    """What Clan records for a generator's `validation`: sha256 of Nix's toJSON, none for null."""
    if validation is None:
        return None
    text = json.dumps(validation, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def within(clan_dir: Path, path: Path) -> None:
    """Never read through a symlink that leads out of the clan."""
    if not path.resolve().is_relative_to(clan_dir.resolve()):
        raise ClanError(problem(path, "a symlink leading out of the clan; refusing to read it",
                                hint="replace it with the file it points to"))


def _key_json(clan_dir: Path, path: Path) -> list[str]:
    """The age public keys of a `sops/{users,machines}/<name>/key.json` (an object or a list of them)."""
    within(clan_dir, path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ClanError(problem(path, f"cannot read Clan's key file: {exc}")) from None
    items = data if isinstance(data, list) else [data]
    found = [str(i["publickey"]) for i in items
             if isinstance(i, dict) and i.get("type", "age") == "age" and isinstance(i.get("publickey"), str)]
    if not found:
        raise ClanError(problem(path, "Clan's key file names no age public key",
                                hint='expected {"publickey": "age1…", "type": "age"}'))
    return found


def named_keys(clan_dir: Path, kind: str) -> dict[str, list[str]]:
    """Name → age public keys of Clan's `sops/<kind>/<name>/key.json` files (kind: users, machines)."""
    folder = clan_dir / SOPS_DIR / kind
    if not folder.is_dir():
        return {}
    within(clan_dir, folder)
    return {p.name: _key_json(clan_dir, p / "key.json")
            for p in sorted(folder.iterdir()) if (p / "key.json").is_file()}


def read_folder(
    folder: Path, ids: list[age.Identity], problems: list[Problem]
) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, set[str]], str | None]:
    """A Clan generator folder: public values, decrypted secrets, machines linked per secret, Clan's hash."""
    public: dict[str, bytes] = {}
    secret: dict[str, bytes] = {}
    linked: dict[str, set[str]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        names = {p.name for p in entry.iterdir()} if entry.is_dir() and not entry.is_symlink() else set()
        if not names or names - {VALUE, CLAN_SECRET, SECRET, *CLAN_LINK_DIRS, RECIPIENTS}:
            problems.append(problem(entry, "not a var folder Clan's sops or in-repo store would write",
                                    hint="move it out of vars/ (or fix it) and import again"))
            continue
        if VALUE in names and (CLAN_SECRET in names or SECRET in names):
            problems.append(problem(entry, "holds both a public value and a secret"))
            continue
        if VALUE in names:
            value = entry / VALUE
            if value.is_symlink() or not value.is_file():
                problems.append(problem(value, "a public value must be a plain file (not a symlink)"))
                continue
            public[entry.name] = value.read_bytes()
        elif CLAN_SECRET in names:
            path = entry / CLAN_SECRET
            if path.is_symlink():
                problems.append(problem(path, "a secret must be a plain file (not a symlink)"))
                continue
            try:
                secret[entry.name] = sops.decrypt_binary(path, ids)
            except ClanError as err:
                problems.extend(err.problems)
                continue
            machines = entry / CLAN_MACHINE_LINKS
            readable = machines.is_dir() and not machines.is_symlink()
            linked[entry.name] = {p.name for p in machines.iterdir()} if readable else set()
        else:
            problems.append(problem(
                entry, f"a pyclan secret ({SECRET}) in a folder pyclan does not recognise as its own",
                hint=f"if {folder.name}/{VALIDATION_HASH} was edited, end it with a newline again; "
                     f"or remove {folder.name}/ to have it generated anew"))
    hash_file = folder / VALIDATION_HASH
    clan_hash = hash_file.read_text().strip() or None if hash_file.is_file() else None
    return public, secret, linked, clan_hash
