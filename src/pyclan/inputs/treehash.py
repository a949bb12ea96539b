"""A content hash of a folder, like Nix's narHash: the same files give the same hash anywhere.

The hash covers, for every regular file and symlink in sorted path order, its relative path,
its kind (file, executable file or symlink) and its content. A symlink counts with its target's
name *and* what it points to (a file's bytes, a folder's tree hash), since Python imports the
target: a link whose target lies outside the input (`boundary`) is refused (`UnsafeLink`), so
content the lock does not cover is never run. Directories count only through what they contain.
`.git` and `__pycache__` folders are never hashed: neither is source, and pyclan never runs
bytecode from an input (see `providers.py`: it deletes `__pycache__` from cached checkouts and
compiles input modules from their sources only).
The result is written `sha256-<base64>` (the SRI form Nix uses in flake.lock).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

PYCACHE = "__pycache__"
IGNORED = frozenset({".git", PYCACHE})


def _entries(root: Path, ignored: frozenset[str]) -> Iterator[tuple[str, Path]]:
    """(posix relative path, absolute path) of every non-directory below root, unsorted."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        keep: list[str] = []
        for name in dirnames:
            if name in ignored:
                continue
            full = Path(dirpath, name)
            if full.is_symlink():  # os.walk lists symlinks to folders as folders
                filenames.append(name)
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            full = Path(dirpath, name)
            yield full.relative_to(root).as_posix(), full


class UnsafeLink(Exception):
    """A symlink in an input that points outside it (or into a loop)."""

    def __init__(self, link: str, target: str, reason: str = "points outside the input") -> None:
        super().__init__(f"{link} -> {target}: {reason}")
        self.link = link
        self.target = target
        self.reason = reason


def tree_hash(root: Path, boundary: Path | None = None) -> str:
    """`sha256-<base64>` of the folder `root` (a missing folder hashes like an empty one).

    Symlinks must resolve inside `boundary` (default: `root`); raises UnsafeLink otherwise.
    """
    limit = (boundary or root).resolve()
    if root.is_symlink() and not root.resolve().is_relative_to(limit):
        raise UnsafeLink(root.name, os.readlink(root))
    return _tree_hash(root, limit, frozenset({root.resolve()}))


def _tree_hash(root: Path, limit: Path, visiting: frozenset[Path]) -> str:
    digest = hashlib.sha256(b"pyclan-tree-v1\0")
    if root.is_dir():
        for rel, full in sorted(_entries(root, IGNORED), key=lambda item: item[0].encode()):
            info = full.lstat()
            name = rel.encode()
            if stat.S_ISLNK(info.st_mode):
                kind, data = _link(rel, full, limit, visiting)
            elif stat.S_ISREG(info.st_mode):
                kind = b"x" if info.st_mode & 0o111 else b"f"
                data = full.read_bytes()
            else:  # sockets, fifos: never part of a source tree
                kind, data = b"o", b""
            digest.update(kind + b"\0" + str(len(name)).encode() + b"\0" + name)
            digest.update(str(len(data)).encode() + b"\0" + data)
    return "sha256-" + base64.b64encode(digest.digest()).decode()


def _link(rel: str, full: Path, limit: Path, visiting: frozenset[Path]) -> tuple[bytes, bytes]:
    """A symlink's kind and data: its target's name, plus the content it resolves to."""
    target = os.readlink(full)
    resolved = full.resolve()
    if not resolved.is_relative_to(limit):
        raise UnsafeLink(rel, target)
    if resolved.is_dir():
        if resolved in visiting or any(resolved in v.parents for v in visiting):
            raise UnsafeLink(rel, target, "points to a folder that contains it (a loop)")
        inner = _tree_hash(resolved, limit, visiting | {resolved})
        return b"L", target.encode() + b"\0d" + inner.encode()
    if resolved.is_file():
        return b"L", target.encode() + b"\0f" + resolved.read_bytes()
    return b"l", target.encode()  # dangling: nothing to import through it
