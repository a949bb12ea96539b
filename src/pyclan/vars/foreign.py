"""Which generator folders under `vars/` pyclan wrote — and so may replace — and which it must leave alone.

pyclan only ever replaces whole generator folders (`vars/per-machine/<m>/<gen>/`, `vars/shared/<gen>/`).
A folder counts as **written by pyclan** when all of this holds:

- it has a `.validation-hash` file of exactly one line ending in a newline (pyclan writes one on
  every store; Clan writes its hash without a newline, and none at all when `validation` is null);
- every other entry is a file folder holding either `value`, or `secret.age` (starting with the age
  v1 header) plus `secret.age.recipients`, or one of pyclan's own hidden files (`.set-by-hand`,
  interrupted-write leftovers `.<name>.tmp-<hex>` / `.<name>.old-<hex>`);
- nothing in it is a symlink (pyclan never writes one).

Anything else is **foreign**: Clan's sops layout (`<file>/secret` as sops JSON, `<file>/users/`,
`<file>/machines/`, `<file>/groups/` links), a hash file without the newline, stray files. An empty
folder is neither (nothing to lose). A foreign folder is reported by `vars check` (kind
`vars-foreign`); `vars generate` and `vars set` refuse to run while any exists, and point at
`pyclan vars import --from-clan`, which converts Clan's folders into pyclan's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pyclan.errors import ClanError, Problem
from pyclan.vars.layout import (
    CLAN_LINK_DIRS,
    CLAN_SECRET,
    RECIPIENTS,
    SECRET,
    SET_BY_HAND,
    VALIDATION_HASH,
    VALUE,
    GenKey,
    per_machine_root,
    shared_root,
)

IMPORT_COMMAND = "pyclan vars import --from-clan"
AGE_HEADER = b"age-encryption.org/v1\n"
_LEFTOVER = re.compile(r"^\..+\.(tmp|old)-[0-9a-f]{12}$")
_HASH_LINE = re.compile(r"^[^\n]+\n$")


@dataclass(frozen=True)
class ForeignFolder:
    key: GenKey
    rel: str  # the folder relative to the clan: "vars/per-machine/peer1/new-service"
    reasons: tuple[str, ...]  # what in it pyclan did not write, e.g. "a-secret/secret: a sops file"

    def describe(self) -> str:
        shown = "; ".join(self.reasons[:4]) + (f"; … ({len(self.reasons) - 4} more)" if len(self.reasons) > 4 else "")
        return f"{self.rel} holds vars that pyclan did not write ({shown})"


def _own_hidden(name: str) -> bool:
    return name in (VALIDATION_HASH, SET_BY_HAND) or bool(_LEFTOVER.match(name))


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """A folder's entries, sorted; `os.scandir` knows links and folders without a stat per entry."""
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def _file_folder_reasons(folder: Path) -> list[str]:
    reasons: list[str] = []
    names: set[str] = set()
    for entry in _entries(folder):
        rel = f"{folder.name}/{entry.name}"
        if entry.is_symlink():
            reasons.append(f"{rel}: a symlink")
        elif entry.name == CLAN_SECRET:
            reasons.append(f"{rel}: a sops-encrypted secret (Clan's sops backend)")
        elif entry.name in CLAN_LINK_DIRS and entry.is_dir(follow_symlinks=False):
            reasons.append(f"{rel}/: Clan's sops recipient links")
        elif entry.name in (VALUE, SECRET, RECIPIENTS):
            if entry.is_file(follow_symlinks=False):
                names.add(entry.name)
            # else: pyclan's own name damaged (a folder in its place): the store reports it with a fix
        elif not _LEFTOVER.match(entry.name):
            reasons.append(f"{rel}: not a pyclan vars file")
    if SECRET in names:
        with (folder / SECRET).open("rb") as fh:
            if fh.read(len(AGE_HEADER)) != AGE_HEADER:
                reasons.append(f"{folder.name}/{SECRET}: not an age file")
        if VALUE in names:
            reasons.append(f"{folder.name}: both a public value and a secret")
    return reasons


def folder_reasons(folder: Path) -> list[str]:
    """What in one generator folder pyclan did not write; [] for pyclan's own (or an empty) folder."""
    if folder.is_symlink():
        return ["the folder is a symlink"]
    entries = _entries(folder)
    if not entries:
        return []
    reasons: list[str] = []
    hash_entry: os.DirEntry[str] | None = None
    for entry in entries:
        if entry.name.startswith("."):
            if entry.is_symlink() or not _own_hidden(entry.name):
                reasons.append(f"{entry.name}: not a pyclan vars file")
            elif entry.name == VALIDATION_HASH and entry.is_file(follow_symlinks=False):
                hash_entry = entry
        elif entry.is_symlink():
            reasons.append(f"{entry.name}: a symlink")
        elif entry.is_dir(follow_symlinks=False):
            reasons.extend(_file_folder_reasons(Path(entry.path)))
        else:
            reasons.append(f"{entry.name}: a plain file where pyclan keeps one folder per var")
    if hash_entry is not None:
        if not _HASH_LINE.match(Path(hash_entry.path).read_text(errors="replace")):
            reasons.append(f"{VALIDATION_HASH}: not written by pyclan (Clan writes it without a newline)")
    elif any(not e.name.startswith(".") for e in entries):
        reasons.append(f"no {VALIDATION_HASH} (pyclan writes one with every generator's vars)")
    return reasons


def generator_folders(clan_dir: Path) -> list[tuple[GenKey, Path]]:
    """Every generator folder on disk (shared first, then per machine), hidden entries excluded."""
    out: list[tuple[GenKey, Path]] = []
    shared = shared_root(clan_dir)
    if shared.is_dir() and not shared.is_symlink():
        out += [(GenKey(p.name), p) for p in sorted(shared.iterdir()) if _gen_entry(p)]
    per_machine = per_machine_root(clan_dir)
    if per_machine.is_dir() and not per_machine.is_symlink():
        for mdir in sorted(per_machine.iterdir()):
            if mdir.is_dir() and not mdir.is_symlink() and not mdir.name.startswith("."):
                out += [(GenKey(p.name, mdir.name), p) for p in sorted(mdir.iterdir()) if _gen_entry(p)]
    return out


def _gen_entry(path: Path) -> bool:
    return not path.name.startswith(".") and (path.is_dir() or path.is_symlink())


def scan(clan_dir: Path, machines: list[str] | None = None) -> list[ForeignFolder]:
    """The foreign generator folders of the clan (of `machines` and shared ones, when given)."""
    found: list[ForeignFolder] = []
    for key, folder in generator_folders(clan_dir):
        if machines is not None and key.machine is not None and key.machine not in machines:
            continue
        reasons = folder_reasons(folder)
        if reasons:
            found.append(ForeignFolder(key, str(folder.relative_to(clan_dir)), tuple(reasons)))
    return found


def refuse_if_foreign(clan_dir: Path, command: str) -> None:
    """Stop `command` before it writes anything while vars/ holds folders pyclan did not write."""
    found = scan(clan_dir)
    if not found:
        return
    hint = (f"run `{IMPORT_COMMAND}` to take them over (`--dry-run` shows what it would do); "
            "pyclan never deletes or overwrites vars files it did not write")
    problems = [
        Problem("vars-error", f.key.label, f"`{command}` refused: {f.describe()}", hint=hint) for f in found[:10]
    ]
    if len(found) > 10:
        problems.append(Problem("vars-error", "vars", f"… and {len(found) - 10} more such folders", hint=hint))
    raise ClanError(problems)


def set_by_hand(folder: Path) -> list[str]:
    """The generator's files set with `vars set` since it last ran (a run replaces the folder, and this list)."""
    try:
        return sorted({line for line in (folder / SET_BY_HAND).read_text().splitlines() if line})
    except FileNotFoundError:
        return []
