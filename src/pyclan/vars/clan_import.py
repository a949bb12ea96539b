"""`pyclan vars import --from-clan`: take over a Clan clan's sops-encrypted vars, losslessly.

Clan's sops backend keeps a var as `vars/<rel_dir>/<file>/secret` (a sops document, readable by the
users and machines linked beside it in `users/`, `machines/`, `groups/`) or `…/<file>/value` (public,
in clear), and its keys in `sops/`: `sops/users/<u>/key.json` (admins' public keys),
`sops/machines/<m>/key.json` and `sops/secrets/<m>-age.key/secret` (each machine's age key pair);
`clan_layout.py` reads that layout.

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

`sops/` itself is left as it is (it is not pyclan's; the user deletes it once done with Clan).
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pyclan.errors import ClanError, Problem
from pyclan.vars import age, keys, sops
from pyclan.vars.clan_layout import SOPS_DIR, clan_validation_hash, named_keys, problem, read_folder, within
from pyclan.vars.context import VarsContext
from pyclan.vars.foreign import scan
from pyclan.vars.layout import (
    ADMINS_REL,
    CLAN_SECRET,
    MACHINE_KEY_DIR,
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
        raise ClanError(problem("keys", "no age key found to decrypt Clan's secrets", hint=sops.no_key_hint()))
    return ids


def _plan_keys(ctx: VarsContext, ids: list[age.Identity], plan: _Plan, problems: list[Problem]) -> list[str]:
    """Admins (existing + Clan's users) and machine keys; returns the final admin public keys."""
    clan_dir = ctx.clan_dir
    existing: dict[str, str] = {}
    folder = admins_dir(clan_dir)
    if folder.is_dir():
        existing = {p.stem: age.parse_recipient(p.read_text(), str(p.relative_to(clan_dir)))
                    for p in sorted(folder.glob("*.pub"))}
    for user, pubs in named_keys(clan_dir, "users").items():
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
        problems.append(problem(ADMINS_REL, f"no admin keys: neither pyclan's {ADMINS_REL}/ nor Clan's sops/users/",
                                hint=keys.KEYGEN_HINT))
    clan_machines = named_keys(clan_dir, "machines")
    for m, pubs in clan_machines.items():
        if keys.machine_public_key(clan_dir, m) is not None:
            if keys.machine_public_key(clan_dir, m) not in pubs:
                plan.report.notes.append(f"machine '{m}' already has a pyclan age key; Clan's was not taken over")
            continue
        secret_path = clan_dir / SOPS_DIR / "secrets" / f"{m}-age.key" / CLAN_SECRET
        if secret_path.is_file():
            within(clan_dir, secret_path)
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
            problems.append(problem(secret_path, f"machine '{m}''s private age key does not belong to the public "
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
            problems.append(problem(folder, "a generator folder that is a symlink; refusing to follow it",
                                    hint="replace it with the folder it points to"))
            continue
        public, secret, linked, clan_hash = read_folder(folder, ids, problems)
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
