"""The on-disk store of vars: public values in clear, secrets as age files, written atomically.

A generator's folder is only ever replaced as a whole: the new content is assembled in a
hidden sibling folder (`.<gen>.tmp-<token>`) and swapped in with one `renameat2(EXCHANGE)`
(or, where the kernel or file system lacks it, two renames that `recover` completes). So a
failure or a SIGKILL while generating leaves either the old folder or the new one — never a
mixture — and hidden leftovers are cleaned up by the next command that touches the store.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyclan.vars.layout import RECIPIENTS, SECRET, VALIDATION_HASH, VALUE, VARS_DIR, GenKey, gen_dir

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[0-9a-f]{12}$")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@dataclass(frozen=True)
class StoredSecret:
    ciphertext: bytes
    recipients: tuple[str, ...]  # public keys, sorted; () if the recipients file is missing


Entry = bytes | StoredSecret  # what one var file holds: a public value or a secret


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a single file via temp + rename so readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False if unsupported here."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(new: Path, target: Path) -> None:
    """Make `new` (a finished folder) become `target`, atomically where the kernel allows."""
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new)  # now holds the old content
        return
    old = target.parent / f".{target.name}.old-{secrets.token_hex(6)}"
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old)


def recover(parent: Path) -> None:
    """Finish or undo interrupted swaps in `parent`: drop temp folders, restore a lost old one."""
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        m = _LEFTOVER.match(entry.name)
        if m is None:
            continue
        target = parent / m["name"]
        if m["kind"] == "old" and not target.exists():
            os.rename(entry, target)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


class VarsStore:
    """Reads and writes one clan's `vars/` folder."""

    def __init__(self, clan_dir: Path) -> None:
        self.clan_dir = clan_dir
        self._recovered: set[Path] = set()

    def dir(self, key: GenKey) -> Path:
        path = gen_dir(self.clan_dir, key)
        if path.parent not in self._recovered:
            recover(path.parent)
            self._recovered.add(path.parent)
        return path

    # -- reading -------------------------------------------------------------------------------
    def public(self, key: GenKey, file: str) -> bytes | None:
        try:
            return (self.dir(key) / file / VALUE).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def secret(self, key: GenKey, file: str) -> StoredSecret | None:
        folder = self.dir(key) / file
        try:
            data = (folder / SECRET).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            lines = (folder / RECIPIENTS).read_text().split()
        except FileNotFoundError:
            lines = []
        return StoredSecret(data, tuple(sorted(lines)))

    def has(self, key: GenKey, file: str, secret: bool) -> bool:
        return (self.dir(key) / file / (SECRET if secret else VALUE)).is_file()

    def validation_hash(self, key: GenKey) -> str | None:
        try:
            return (self.dir(key) / VALIDATION_HASH).read_text().strip() or None
        except FileNotFoundError:
            return None

    def stored_generators(self, machine: str | None) -> list[str]:
        """Generator folders on disk for a machine (or shared), hidden entries excluded."""
        base = self.clan_dir / VARS_DIR / ("shared" if machine is None else f"per-machine/{machine}")
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    # -- writing -------------------------------------------------------------------------------
    def write(
        self, key: GenKey, entries: Mapping[str, Entry], validation_hash: str | None, *, replace_all: bool
    ) -> None:
        """Store a generator's files in one atomic step.

        replace_all: the folder becomes exactly `entries` (a generator run); otherwise the
        given files replace theirs in a copy of the current folder (set, re-encryption).
        """
        target = self.dir(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
        try:
            if not replace_all and target.is_dir():
                shutil.copytree(target, tmp, symlinks=True)
            else:
                tmp.mkdir()
            for file, entry in entries.items():
                folder = tmp / file
                if folder.exists():
                    shutil.rmtree(folder)
                folder.mkdir(parents=True)
                if isinstance(entry, StoredSecret):
                    (folder / SECRET).write_bytes(entry.ciphertext)
                    (folder / RECIPIENTS).write_text("".join(f"{r}\n" for r in sorted(entry.recipients)))
                else:
                    (folder / VALUE).write_bytes(entry)
            if validation_hash is not None:
                (tmp / VALIDATION_HASH).write_text(validation_hash + "\n")
            swap_in(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
