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

from pyclan import safepath
from pyclan.vars.layout import RECIPIENTS, SECRET, VALIDATION_HASH, VALUE, GenKey, gen_dir

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[0-9a-f]{12}$")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@dataclass(frozen=True)
class StoredSecret:
    ciphertext: bytes
    recipients: tuple[str, ...]  # public keys, sorted; () if the recipients file is missing


Entry = bytes | StoredSecret  # what one var file holds: a public value or a secret


def atomic_write(path: Path, data: bytes, mode: int = 0o644, root: Path | None = None) -> None:
    """Write a single file via temp + rename so readers never see half of it.

    With `root` (the clan folder) no symlink on the way is followed and folders are made 0700.
    """
    if root is not None:
        safepath.write_atomic(root, path, data, mode, dir_mode=0o700)
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
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
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if _exchange(new, target):
        _remove(new)  # now holds the old content
        return
    old = target.parent / f".{target.name}.old-{secrets.token_hex(6)}"
    os.rename(target, old)
    os.rename(new, target)
    _remove(old)


def _remove(path: Path) -> None:
    """Remove a file, symlink or folder (never what a symlink points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def recover(parent: Path, root: Path | None = None) -> None:
    """Finish or undo interrupted swaps in `parent`: drop temp folders, restore a lost old one.

    Only real entries are touched: a leftover-looking symlink is removed as a link, never
    followed, and nothing happens if `parent` itself lies behind a symlink (`root` given).
    """
    if root is not None:
        if not safepath.is_dir(root, parent):
            return
    elif not parent.is_dir() or parent.is_symlink():
        return
    for entry in parent.iterdir():
        m = _LEFTOVER.match(entry.name)
        if m is None:
            continue
        target = parent / m["name"]
        if entry.is_symlink():
            entry.unlink(missing_ok=True)
        elif m["kind"] == "old" and not os.path.lexists(target):
            os.rename(entry, target)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


class VarsStore:
    """Reads and writes one clan's `vars/` folder (never through a symlink, see `safepath`)."""

    def __init__(self, clan_dir: Path) -> None:
        self.clan_dir = clan_dir
        self._recovered: set[Path] = set()

    def dir(self, key: GenKey) -> Path:
        path = gen_dir(self.clan_dir, key)
        if path.parent not in self._recovered:
            try:
                recover(path.parent, self.clan_dir)
            except OSError as exc:
                raise safepath.os_error(self.clan_dir, path.parent, exc, "clean up an interrupted write") from None
            self._recovered.add(path.parent)
        return path

    def _read(self, path: Path) -> bytes | None:
        return safepath.read_bytes(self.clan_dir, path)

    # -- reading -------------------------------------------------------------------------------
    def public(self, key: GenKey, file: str) -> bytes | None:
        return self._read(self.dir(key) / file / VALUE)

    def secret(self, key: GenKey, file: str) -> StoredSecret | None:
        folder = self.dir(key) / file
        data = self._read(folder / SECRET)
        if data is None:
            return None
        lines = (self._read(folder / RECIPIENTS) or b"").decode(errors="replace").split()
        return StoredSecret(data, tuple(sorted(lines)))

    def has(self, key: GenKey, file: str, secret: bool) -> bool:
        path = self.dir(key) / file / (SECRET if secret else VALUE)
        if safepath.is_file(self.clan_dir, path):
            return True
        if os.path.lexists(path):  # a folder or FIFO where the file belongs: say so, with a fix
            self._read(path)
        return False

    def validation_hash(self, key: GenKey) -> str | None:
        data = self._read(self.dir(key) / VALIDATION_HASH)
        return (data.decode(errors="replace").strip() or None) if data is not None else None

    # -- writing -------------------------------------------------------------------------------
    def write(
        self, key: GenKey, entries: Mapping[str, Entry], validation_hash: str | None, *, replace_all: bool
    ) -> None:
        """Store a generator's files in one atomic step.

        replace_all: the folder becomes exactly `entries` (a generator run); otherwise the
        given files replace theirs in a copy of the current folder (set, re-encryption).
        """
        target = self.dir(key)
        safepath.make_dirs(self.clan_dir, target.parent, 0o755)
        safepath.check(self.clan_dir, target)
        tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
        try:
            if not replace_all and safepath.is_dir(self.clan_dir, target):
                shutil.copytree(target, tmp, symlinks=True)
            else:
                tmp.mkdir()
            for file, entry in entries.items():
                folder = tmp / file
                if os.path.lexists(folder):
                    safepath.remove_tree(self.clan_dir, folder)
                folder.mkdir(parents=True)
                if isinstance(entry, StoredSecret):
                    _write_new(folder / SECRET, entry.ciphertext)
                    _write_new(folder / RECIPIENTS, "".join(f"{r}\n" for r in sorted(entry.recipients)).encode())
                else:
                    _write_new(folder / VALUE, entry)
            if validation_hash is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp / VALIDATION_HASH)
                _write_new(tmp / VALIDATION_HASH, (validation_hash + "\n").encode())
            swap_in(tmp, target)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise safepath.os_error(self.clan_dir, target, exc, f"store the vars of {key.label}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
