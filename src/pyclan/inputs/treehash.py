"""A content hash of a folder, like Nix's narHash: the same files give the same hash anywhere.

The hash covers, for every regular file and symlink in sorted path order, its relative path,
its kind (file, executable file or symlink) and its content (a symlink's target). Directories
count only through what they contain. `.git` and `__pycache__` folders are never hashed:
neither is source (pyclan deletes `__pycache__` from cached checkouts before use, so stale
bytecode is never run in place of the hashed sources).
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


def tree_hash(root: Path) -> str:
    """`sha256-<base64>` of the folder `root` (a missing folder hashes like an empty one)."""
    digest = hashlib.sha256(b"pyclan-tree-v1\0")
    if root.is_dir():
        for rel, full in sorted(_entries(root, IGNORED), key=lambda item: item[0].encode()):
            info = full.lstat()
            name = rel.encode()
            if stat.S_ISLNK(info.st_mode):
                kind, data = b"l", os.readlink(full).encode()
            elif stat.S_ISREG(info.st_mode):
                kind = b"x" if info.st_mode & 0o111 else b"f"
                data = full.read_bytes()
            else:  # sockets, fifos: never part of a source tree
                kind, data = b"o", b""
            digest.update(kind + b"\0" + str(len(name)).encode() + b"\0" + name)
            digest.update(str(len(data)).encode() + b"\0" + data)
    return "sha256-" + base64.b64encode(digest.digest()).decode()

