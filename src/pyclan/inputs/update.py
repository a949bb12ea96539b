"""`pyclan inputs update`: re-resolve inputs and show what changed before the lock is written.

Loading a service module runs its code, so moving an input to new code deserves a look: the
plan lists, per input, the old and new commit (or hash, or version), the commits in between
and the files changed, `git diff --stat`-like. `UpdatePlan.apply()` then writes `clan.lock`
atomically. Overrides never take part: an update always follows the declared sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyclan.errors import ClanError, Problem, did_you_mean
from pyclan.inputs.fetch import FileChange, GitFailed
from pyclan.inputs.lock import LockEntry, LockFile
from pyclan.inputs.package import installed_version, not_installed
from pyclan.inputs.providers import SERVICES_DIR, InputSet, input_hash
from pyclan.inputs.urls import GitSource, parse_git_url


@dataclass
class InputUpdate:
    """One input's move from its old lock entry to its new one."""

    name: str
    old: LockEntry | None
    new: LockEntry
    changes: list[FileChange] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "changed": self.changed,
            "old": self.old.to_json() if self.old else None,
            "new": self.new.to_json(),
            "commits": list(self.commits),
            "files": [c.to_json() for c in self.changes],
            "note": self.note,
        }


@dataclass
class UpdatePlan:
    """What `apply()` will write: the new lock and, per updated input, what changed."""

    lock: LockFile
    updates: list[InputUpdate]
    removed: list[str]  # lock entries of inputs that are no longer declared

    @property
    def changed(self) -> bool:
        return bool(self.removed) or any(u.changed for u in self.updates)

    def apply(self) -> None:
        self.lock.save()

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": str(self.lock.path),
            "changed": self.changed,
            "inputs": [u.to_json() for u in self.updates],
            "removed": list(self.removed),
        }


def plan_update(inputs: InputSet, names: Sequence[str] = ()) -> UpdatePlan:
    """Re-resolve `names` (default: every declared input) from their sources (network for git)."""
    declared = sorted(inputs.specs)
    problems: list[Problem] = []
    for name in names:
        if name not in inputs.specs:
            problems.append(
                Problem(
                    "unknown-input",
                    f"inputs.{name}",
                    f"this clan declares no input '{name}'"
                    + (f"; declared inputs: {', '.join(declared)}" if declared else " (it declares none)"),
                    hint=did_you_mean(name, declared) or "declare it under [inputs] in clan.toml",
                )
            )
    if problems:
        raise ClanError(problems)
    old_lock = inputs.lock
    new_lock = LockFile(path=old_lock.path, entries=dict(old_lock.entries))
    updates: list[InputUpdate] = []
    for name in names or declared:
        old = old_lock.entries.get(name)
        kind = inputs.kind_of(name)
        if kind == "git":
            update = _update_git(inputs, name, old)
        elif kind == "path":
            update = _update_path(inputs, name, old)
        else:
            update = _update_package(inputs, name, old)
        new_lock.entries[name] = update.new
        updates.append(update)
    removed = sorted(set(new_lock.entries) - set(inputs.specs))
    for name in removed:
        del new_lock.entries[name]
    return UpdatePlan(lock=new_lock, updates=updates, removed=removed)


def _update_git(inputs: InputSet, name: str, old: LockEntry | None) -> InputUpdate:
    source = inputs.git_source(name)
    cache = inputs.git_cache(source)
    try:
        commit = cache.fetch(source.wanted)
        tree = cache.checkout(commit, fresh=True)  # also repairs a modified cached checkout
    except GitFailed as err:
        raise ClanError.single(
            "input-error",
            f"inputs.{name}.url",
            f"input '{name}': {err.action} failed: {err.detail}",
            hint="check the URL, your network and your git credentials",
        ) from None
    new = LockEntry("git", source.url, rev=commit, hash=input_hash(name, tree, tree, f"inputs.{name}.url"))
    update = InputUpdate(name=name, old=old, new=new)
    if old is None or old.kind != "git" or old.rev is None or old.rev == commit:
        if old is not None and old.rev == commit and old.hash != new.hash:
            update.note = "same commit, but the locked hash was wrong; it is corrected"
        return update
    old_source = _old_source(old)
    if old_source is None or old_source.fetch_url != source.fetch_url:
        update.note = "the input now comes from another repository; files are not compared"
        return update
    try:
        cache.ensure_commit(old.rev)
        update.changes = cache.diff(old.rev, commit)
        update.commits = cache.log(old.rev, commit)
    except GitFailed as err:
        update.note = f"cannot list the changes: {err.detail}"
    return update


def _old_source(entry: LockEntry) -> GitSource | None:
    """The GitSource of an old lock entry's URL, or None if it no longer parses."""
    try:
        return parse_git_url(entry.source, "clan.lock")
    except ClanError:
        return None


def _update_path(inputs: InputSet, name: str, old: LockEntry | None) -> InputUpdate:
    folder = inputs.path_folder(name)
    raw = inputs.specs[name].path or ""
    new = LockEntry("path", raw, hash=input_hash(name, folder / SERVICES_DIR, folder, f"inputs.{name}.path"))
    update = InputUpdate(name=name, old=old, new=new)
    if update.changed and old is not None:
        update.note = "pyclan keeps no copy of a path input; review the change with your version control"
    return update


def _update_package(inputs: InputSet, name: str, old: LockEntry | None) -> InputUpdate:
    package = inputs.specs[name].package or ""
    version = installed_version(package)
    if version is None:
        raise not_installed(name, package)
    return InputUpdate(name=name, old=old, new=LockEntry("package", package, version=version))
