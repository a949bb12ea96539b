"""`pyclan vars import --from-clan`: take over a Clan clan's sops-encrypted vars, losslessly.

Clan's sops backend keeps a var as `vars/<rel_dir>/<file>/secret` (a sops document, readable by the
users and machines linked beside it in `users/`, `machines/`, `groups/`) or `…/<file>/value` (public,
in clear), and its keys in `sops/`: `sops/users/<u>/key.json` (admins' public keys),
`sops/machines/<m>/key.json` and `sops/secrets/<m>-age.key/secret` (each machine's age key pair).

The import decrypts every foreign generator folder with the user's age key (found as sops finds it,
see `pyclan.vars.sops.key_sources`) and stores it the pyclan way, in three steps:

1. read and check everything in memory: every sops file must decrypt and pass its MAC, every folder
   must be one Clan's layout explains; a single failure stops the import before anything is written;
2. register what pyclan lacks: Clan's users as admins (`keys/admins/<u>.pub`, unless the name is
   taken) and each machine's own age key pair (`keys/machines/<m>.pub` + `.machine-key/`, unless pyclan
   already has one), so the machines keep their identity;
3. replace each folder in one atomic step: public values byte for byte, secrets age-encrypted for
   every admin plus every machine that deploys the file (pyclan's rule; Clan's links name the
   machines of undeclared generators), and a validation hash: pyclan's current one when Clan's
   recorded hash matches what Clan would compute for pyclan's declaration of the generator (so
   the generator is complete, not regenerated), else `clan:<hash>` (outdated: `vars generate`
   makes it anew). A failure while writing restores the folders and keys already replaced.

`sops/` itself is left as it is: pyclan never deletes files it did not write outside `vars/`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pyclan.errors import ClanError, Problem
from pyclan.vars import age, keys, sops
from pyclan.vars.context import VarsContext
from pyclan.vars.foreign import CLAN_LINK_DIRS, CLAN_SECRET, scan
from pyclan.vars.layout import (
    MACHINE_KEY_DIR,
    SECRET,
    VALIDATION_HASH,
    VALUE,
    VARS_DIR,
    GenKey,
    admins_dir,
    gen_dir,
    machine_key_path,
    machine_pub_path,
)
from pyclan.vars.store import Entry, StoredSecret, atomic_write

if TYPE_CHECKING:
    from pyclan.clan import Clan

SOPS_DIR = "sops"
BACKUP_PREFIX = ".import-backup-"
Status = Literal["current", "outdated", "undeclared", "incomplete"]


@dataclass(frozen=True)
class ImportedGenerator:
    label: str  # "<machine>/<gen>" or "shared/<gen>"
    public: tuple[str, ...]
    secret: tuple[str, ...]
    status: Status
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"generator": self.label, "public": list(self.public), "secret": list(self.secret),
                               "status": self.status}
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class ImportReport:
    dry_run: bool
    generators: list[ImportedGenerator] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)  # Clan users registered as pyclan admins
    machine_keys: list[str] = field(default_factory=list)  # machines whose Clan age key was taken over
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run, "generators": [g.to_json() for g in self.generators],
            "admins": self.admins, "machineKeys": self.machine_keys, "notes": self.notes,
        }


def _problem(path: Path | str, message: str, hint: str | None = None) -> Problem:
    return Problem("vars-error", str(path), message, hint=hint)


def clan_validation_hash(validation: Any) -> str | None:
    """What Clan records for a generator's `validation`: sha256 of Nix's toJSON, none for null."""
    if validation is None:
        return None
    text = json.dumps(validation, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


# -- Clan's keys ----------------------------------------------------------------------------------


def _within(clan_dir: Path, path: Path) -> None:
    """Never read through a symlink that leads out of the clan."""
    if not path.resolve().is_relative_to(clan_dir.resolve()):
        raise ClanError(_problem(path, "a symlink leading out of the clan; refusing to read it",
                                 hint="replace it with the file it points to"))


def _key_json(clan_dir: Path, path: Path) -> list[str]:
    """The age public keys of a `sops/{users,machines}/<name>/key.json` (an object or a list of them)."""
    _within(clan_dir, path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ClanError(_problem(path, f"cannot read Clan's key file: {exc}")) from None
    items = data if isinstance(data, list) else [data]
    found = [str(i["publickey"]) for i in items
             if isinstance(i, dict) and i.get("type", "age") == "age" and isinstance(i.get("publickey"), str)]
    if not found:
        raise ClanError(_problem(path, "Clan's key file names no age public key",
                                 hint='expected {"publickey": "age1…", "type": "age"}'))
    return found


def _named_keys(clan_dir: Path, kind: str) -> dict[str, list[str]]:
    """Name → age public keys of Clan's `sops/<kind>/<name>/key.json` files (kind: users, machines)."""
    folder = clan_dir / SOPS_DIR / kind
    if not folder.is_dir():
        return {}
    _within(clan_dir, folder)
    return {p.name: _key_json(clan_dir, p / "key.json")
            for p in sorted(folder.iterdir()) if (p / "key.json").is_file()}


# -- the plan (everything in memory) --------------------------------------------------------------


@dataclass
class _Plan:
    report: ImportReport
    admins: list[str] = field(default_factory=list)  # every admin's public key after the import
    admin_files: dict[str, str] = field(default_factory=dict)  # new keys/admins/<u>.pub → public key
    machine_keys: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # m → (public, private text)
    folders: dict[GenKey, tuple[dict[str, bytes | tuple[bytes, tuple[str, ...]]], str]] = field(default_factory=dict)


def _identities(ctx: VarsContext) -> list[age.Identity]:
    ids = [i for source in sops.key_sources() for i in source.identities]
    if ctx.has_identities():
        ids += ctx.identities()
    if not ids:
        raise ClanError(_problem("keys", "no age key found to decrypt Clan's secrets", hint=sops.no_key_hint()))
    return ids


def _read_folder(
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
        if not names or names - {VALUE, CLAN_SECRET, SECRET, *CLAN_LINK_DIRS, "secret.age.recipients"}:
            problems.append(_problem(entry, "not a var folder Clan's sops or in-repo store would write",
                                     hint="move it out of vars/ (or fix it) and import again"))
            continue
        if VALUE in names and (CLAN_SECRET in names or SECRET in names):
            problems.append(_problem(entry, "holds both a public value and a secret"))
            continue
        if VALUE in names:
            value = entry / VALUE
            if value.is_symlink() or not value.is_file():
                problems.append(_problem(value, "a public value must be a plain file (not a symlink)"))
                continue
            public[entry.name] = value.read_bytes()
        elif CLAN_SECRET in names:
            path = entry / CLAN_SECRET
            if path.is_symlink():
                problems.append(_problem(path, "a secret must be a plain file (not a symlink)"))
                continue
            try:
                secret[entry.name] = sops.decrypt_binary(path, ids)
            except ClanError as err:
                problems.extend(err.problems)
                continue
            machines = entry / "machines"
            readable = machines.is_dir() and not machines.is_symlink()
            linked[entry.name] = {p.name for p in machines.iterdir()} if readable else set()
        else:
            problems.append(_problem(
                entry, f"a pyclan secret ({SECRET}) in a folder pyclan does not recognise as its own",
                hint=f"if {folder.name}/{VALIDATION_HASH} was edited, end it with a newline again; "
                     f"or remove {folder.name}/ to have it generated anew"))
    hash_file = folder / VALIDATION_HASH
    clan_hash = hash_file.read_text().strip() or None if hash_file.is_file() else None
    return public, secret, linked, clan_hash


def _plan_keys(ctx: VarsContext, ids: list[age.Identity], plan: _Plan, problems: list[Problem]) -> list[str]:
    """Admins (existing + Clan's users) and machine keys; returns the final admin public keys."""
    clan_dir = ctx.clan_dir
    existing: dict[str, str] = {}
    folder = admins_dir(clan_dir)
    if folder.is_dir():
        existing = {p.stem: age.parse_recipient(p.read_text(), str(p.relative_to(clan_dir)))
                    for p in sorted(folder.glob("*.pub"))}
    for user, pubs in _named_keys(clan_dir, "users").items():
        if user in existing:
            if existing[user] not in pubs:
                plan.report.notes.append(
                    f"Clan user '{user}' is already a pyclan admin with another key; kept pyclan's")
            continue
        if pubs[0] in existing.values():
            continue
        plan.admin_files[user] = pubs[0]
        plan.report.admins.append(user)
        if len(pubs) > 1:
            plan.report.notes.append(f"Clan user '{user}' has {len(pubs)} keys; registered the first")
    admins = sorted(set(existing.values()) | set(plan.admin_files.values()))
    if not admins:
        problems.append(_problem("keys/admins", "no admin keys: neither pyclan's keys/admins/ nor Clan's sops/users/",
                                 hint=keys.KEYGEN_HINT))
    clan_machines = _named_keys(clan_dir, "machines")
    for m, pubs in clan_machines.items():
        if keys.machine_public_key(clan_dir, m) is not None:
            if keys.machine_public_key(clan_dir, m) not in pubs:
                plan.report.notes.append(f"machine '{m}' already has a pyclan age key; Clan's was not taken over")
            continue
        secret_path = clan_dir / SOPS_DIR / "secrets" / f"{m}-age.key" / CLAN_SECRET
        if secret_path.is_file():
            _within(clan_dir, secret_path)
        else:
            plan.report.notes.append(f"machine '{m}': Clan's private age key ({secret_path.relative_to(clan_dir)}) "
                                     "is missing; pyclan makes a new key pair when it first needs one")
            continue
        try:
            text = sops.decrypt_binary(secret_path, ids).decode()
        except ClanError as err:
            problems.extend(err.problems)
            continue
        parsed = age.parse_identities(text, str(secret_path))
        if len(parsed) != 1 or age.public_key(parsed[0]) not in pubs:
            problems.append(_problem(secret_path, f"machine '{m}''s private age key does not belong to the public "
                                     f"key in sops/machines/{m}/key.json"))
            continue
        plan.machine_keys[m] = (age.public_key(parsed[0]), (age.secret_key(parsed[0]) + "\n").encode())
        plan.report.machine_keys.append(m)
    return admins


def _machine_pub(ctx: VarsContext, plan: _Plan, machine: str) -> str:
    """A machine's public key after the import (creating a key pair in the plan when it has none)."""
    if machine in plan.machine_keys:
        return plan.machine_keys[machine][0]
    existing = keys.machine_public_key(ctx.clan_dir, machine)
    if existing is not None:
        return existing
    ident = age.generate_identity()
    plan.machine_keys[machine] = (age.public_key(ident), (age.secret_key(ident) + "\n").encode())
    plan.report.notes.append(f"machine '{machine}' has no age key (neither pyclan's nor Clan's): a new pair is made")
    return plan.machine_keys[machine][0]


def plan_import(ctx: VarsContext) -> _Plan:
    """Everything the import would write, decrypted and re-encrypted in memory (raises on any problem)."""
    plan = _Plan(ImportReport(dry_run=True))
    problems: list[Problem] = []
    found = scan(ctx.clan_dir)
    has_clan_keys = (ctx.clan_dir / SOPS_DIR).is_dir()
    if not found and not has_clan_keys:
        plan.report.notes.append("nothing to import: vars/ holds no folders that pyclan did not write, "
                                 "and there is no sops/ folder")
        return plan
    ids = _identities(ctx)
    admins = plan.admins = _plan_keys(ctx, ids, plan, problems)
    if admins and not {age.public_key(i) for i in ids} & set(admins):
        plan.report.notes.append("none of your age keys is a pyclan admin after the import: you will not be able "
                                 "to read the secrets; register yours with `pyclan vars keygen`")
    for foreign in found:
        key = foreign.key
        folder = gen_dir(ctx.clan_dir, key)
        if folder.is_symlink():
            problems.append(_problem(folder, "a generator folder that is a symlink; refusing to follow it",
                                     hint="replace it with the folder it points to"))
            continue
        public, secret, linked, clan_hash = _read_folder(folder, ids, problems)
        node = ctx.graph.nodes.get(key)
        entries: dict[str, bytes | tuple[bytes, tuple[str, ...]]] = dict(public)
        for f, value in secret.items():
            declared = node is not None and f in node.generator.files
            machines = node.deploying_machines(f) if node is not None and declared else sorted(linked[f])
            recipients = tuple(sorted({*admins, *(_machine_pub(ctx, plan, m) for m in machines)}))
            entries[f] = (value, recipients)
        if node is None:
            status: Status = "undeclared"
            stored_hash = f"clan:{clan_hash or 'none'}"
            note = "no machine of this clan declares this generator; imported as it is"
        else:
            gen = node.generator
            lacking = sorted(set(gen.files) - set(entries))
            wrong_kind = sorted(f for f, vf in gen.files.items()
                                if (f in public and vf.secret) or (f in secret and not vf.secret))
            note = None
            if clan_hash != clan_validation_hash(gen.validation):
                status, stored_hash = "outdated", f"clan:{clan_hash or 'none'}"
                note = "Clan made these vars from another `validation`; `pyclan vars generate` makes them anew"
            else:
                status, stored_hash = "current", ctx.hash_of(key)
            if lacking or wrong_kind:
                status = "incomplete"
                parts = ([f"lacks {', '.join(lacking)}"] if lacking else []) + (
                    [f"stores {', '.join(wrong_kind)} with another secrecy than declared"] if wrong_kind else [])
                note = ("Clan's folder " + " and ".join(parts)
                        + "; `pyclan vars generate` will make the whole generator anew")
        plan.folders[key] = (entries, stored_hash)
        plan.report.generators.append(ImportedGenerator(
            key.label, tuple(sorted(public)), tuple(sorted(secret)), status, note))
    if problems:
        raise ClanError(problems)
    return plan


# -- writing (all or nothing) ---------------------------------------------------------------------


def _cleanup_backups(clan_dir: Path) -> None:
    base = clan_dir / VARS_DIR
    if base.is_dir():
        for stale in base.glob(f"{BACKUP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)


def _apply(ctx: VarsContext, plan: _Plan) -> None:
    clan_dir, admins = ctx.clan_dir, plan.admins
    entries_by_key: dict[GenKey, dict[str, Entry]] = {}
    for key, (files, _hash) in plan.folders.items():
        out: dict[str, Entry] = {}
        for f, item in files.items():
            if isinstance(item, tuple):
                value, recipients = item
                out[f] = StoredSecret(age.encrypt(value, recipients), recipients)
            else:
                out[f] = item
        entries_by_key[key] = out
    backup = clan_dir / VARS_DIR / f"{BACKUP_PREFIX}{secrets.token_hex(6)}"
    created: list[Path] = []
    replaced: list[tuple[Path, Path]] = []  # (target, its backup copy)
    try:
        for key in plan.folders:
            target = gen_dir(clan_dir, key)
            copy = backup / key.rel_dir
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(target, copy, symlinks=True)
            replaced.append((target, copy))
        for m, (pub, private) in sorted(plan.machine_keys.items()):
            key_folder = machine_key_path(clan_dir, m).parent
            if not key_folder.exists():
                created.append(key_folder)
            keys.write_machine_key(clan_dir, m, age.encrypt(private, admins), admins)
            created.append(machine_pub_path(clan_dir, m))
            atomic_write(machine_pub_path(clan_dir, m), f"{pub}\n".encode())
        for user, pub in sorted(plan.admin_files.items()):
            path = admins_dir(clan_dir) / f"{user}.pub"
            created.append(path)
            atomic_write(path, f"{pub}\n".encode())
        for key, (_files, stored_hash) in plan.folders.items():
            ctx.store.write(key, entries_by_key[key], stored_hash, replace_all=True)
    except BaseException:
        for target, copy in replaced:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(copy, target, symlinks=True)
        for path in reversed(created):
            if path.is_dir() and path.name == MACHINE_KEY_DIR:
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)


def import_from_clan(clan: Clan, dry_run: bool = False) -> ImportReport:
    """Convert the clan's Clan-written vars into pyclan's store (see the module docstring)."""
    ctx = VarsContext.of(clan)
    _cleanup_backups(ctx.clan_dir)
    plan = plan_import(ctx)
    plan.report.dry_run = dry_run
    if not dry_run and (plan.folders or plan.machine_keys or plan.admin_files):
        _apply(ctx, plan)
    return plan.report
