"""`clan.lock`: what every declared input resolved to, so that evaluation is reproducible.

The file sits next to `clan.toml` and is meant to be committed. It is JSON with sorted keys:

    {"inputs": {"libstd": {"type": "git", "url": "git+https://…?ref=main",
                           "rev": "<commit>", "hash": "sha256-…"},
                "local":  {"type": "path", "path": "../libfoo", "hash": "sha256-…"},
                "pkg":    {"type": "package", "package": "libfoo-services", "version": "1.2"}},
     "version": 1}

An entry is valid for a declaration as long as the declared source (`url`, `path`, `package`)
is unchanged; editing the declaration locks the input anew (as Nix does with flake.lock).
Writes are atomic (temporary file + rename), so an interrupted run never leaves half a lock.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pyclan.errors import ClanError

LOCK_FILE = "clan.lock"
LOCK_VERSION = 1
Kind = Literal["git", "path", "package"]
_SOURCE_KEY: dict[str, str] = {"git": "url", "path": "path", "package": "package"}


@dataclass(frozen=True)
class LockEntry:
    """One locked input: its declared source plus the commit/hash/version it resolved to."""

    kind: Kind
    source: str  # the declared url, path or package name
    rev: str | None = None  # git: the commit
    hash: str | None = None  # git, path: content hash (sha256-<base64>)
    version: str | None = None  # package: the installed version

    @property
    def short(self) -> str:
        """A one-word summary for listings: short commit, short hash or version."""
        if self.rev:
            return self.rev[:12]
        if self.version:
            return self.version
        return (self.hash or "")[:19]

    def to_json(self) -> dict[str, str]:
        data: dict[str, str] = {"type": self.kind, _SOURCE_KEY[self.kind]: self.source}
        for key in ("rev", "hash", "version"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data

    @classmethod
    def from_json(cls, name: str, data: Any, file: str) -> LockEntry:
        def bad(message: str) -> ClanError:
            return ClanError.single(
                "input-error",
                f"inputs.{name}",
                message,
                file=file,
                hint=f"fix or delete the entry; `pyclan inputs update {name}` writes it anew",
            )

        if not isinstance(data, dict):
            raise bad("a lock entry must be a JSON object")
        kind = data.get("type")
        if kind not in _SOURCE_KEY:
            raise bad(f"unknown lock entry type {kind!r} (expected git, path or package)")
        source = data.get(_SOURCE_KEY[kind])
        if not isinstance(source, str):
            raise bad(f"a {kind} lock entry needs a string '{_SOURCE_KEY[kind]}'")
        fields: dict[str, str | None] = {}
        for key in ("rev", "hash", "version"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise bad(f"'{key}' must be a string")
            fields[key] = value
        required = {"git": ("rev", "hash"), "path": ("hash",), "package": ("version",)}[kind]
        missing = [k for k in required if not fields[k]]
        if missing:
            raise bad(f"a {kind} lock entry needs '{missing[0]}'")
        return cls(kind=kind, source=source, **fields)


@dataclass
class LockFile:
    """The parsed lock file; `save()` writes it back atomically."""

    path: Path
    entries: dict[str, LockEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, clan_dir: Path) -> LockFile:
        path = clan_dir / LOCK_FILE
        if not path.exists():
            return cls(path=path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ClanError.single(
                "parse-error",
                "",
                f"cannot read the lock file: {exc}",
                file=LOCK_FILE,
                hint="restore it from version control, or delete it and run `pyclan inputs update`",
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("inputs", {}), dict):
            raise ClanError.single(
                "parse-error",
                "",
                "the lock file must be a JSON object with an 'inputs' object",
                file=LOCK_FILE,
                hint="restore it from version control, or delete it and run `pyclan inputs update`",
            )
        version = data.get("version", LOCK_VERSION)
        if version != LOCK_VERSION:
            raise ClanError.single(
                "input-error",
                "version",
                f"lock file version {version!r} is not supported (this pyclan writes {LOCK_VERSION})",
                file=LOCK_FILE,
                hint="update pyclan, or delete clan.lock and run `pyclan inputs update`",
            )
        entries = {
            name: LockEntry.from_json(name, entry, LOCK_FILE) for name, entry in data.get("inputs", {}).items()
        }
        return cls(path=path, entries=entries)

    def render(self) -> str:
        data = {
            "inputs": {name: self.entries[name].to_json() for name in sorted(self.entries)},
            "version": LOCK_VERSION,
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def save(self) -> None:
        """Write atomically: a crash leaves either the old or the new file, never a mix."""
        text = self.render()
        if self.path.exists() and self.path.read_text(encoding="utf-8") == text:
            return
        fd, tmp = tempfile.mkstemp(prefix=".clan.lock.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
