"""Declared inputs → service providers, pinned by `clan.lock` (clan-semantics §2, §3).

`InputSet` resolves each declared input to a folder (git checkout, local path) or an installed
distribution, using only what the lock names; a missing lock entry is created on first use and
announced (as Nix does with flake.lock). Resolution is lazy: an input is fetched, hashed and
checked only when a command needs its services, so a clan whose inputs are unreachable can
still list its machines.

Conventions: a git or path input provides the `.py` modules (or packages) in its `services/`
folder; a package input provides the entry points of group `pyclan.services`.
`--override-input NAME PATH` replaces input NAME by the folder PATH (its `services/`, else PATH
itself) without reading or writing the lock; for `clan-core` it replaces the bundled library.
"""

from __future__ import annotations

import atexit
import importlib.machinery
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, ModuleType

from pyclan.errors import ClanError, did_you_mean
from pyclan.inputs.fetch import GitCache, GitFailed
from pyclan.inputs.lock import LOCK_FILE, Kind, LockEntry, LockFile
from pyclan.inputs.package import PackageProvider, installed_version, not_installed
from pyclan.inputs.treehash import PYCACHE, UnsafeLink, tree_hash
from pyclan.inputs.urls import GitSource, parse_git_url
from pyclan.inventory.models import InputSpec
from pyclan.services.registry import BUNDLED_LABEL, FolderProvider, Provider, ServiceProvider
from pyclan.services.service import Service

SERVICES_DIR = "services"
CLAN_CORE = "clan-core"
RESERVED_NAMES = ("self",)
# Where a pyclan source checkout keeps the bundled library (for `--override-input clan-core`).
LIBRARY_IN_CHECKOUT = Path("src/pyclan/services/library")

Notify = Callable[[str], None]


def _stderr(message: str) -> None:
    sys.stderr.write(f"note: {message}\n")
    sys.stderr.flush()


@dataclass
class ResolvedInput:
    """What one input resolved to for this run."""

    name: str
    kind: Kind | None  # None for an override of an undeclared name (only clan-core)
    source: str  # url, path, package name, or the override folder
    provider: Provider
    entry: LockEntry | None = None  # None when overridden
    root: Path | None = None  # the folder holding the input's files (git, path, override)
    overridden: bool = False


# -- only the hashed sources run ---------------------------------------------------------------
#
# The lock's hash covers an input's sources, not bytecode (`__pycache__` is never hashed), so
# bytecode must never be run in their place: a planted `.pyc` whose header matches its source's
# size and time would be imported instead of the source. Input modules are therefore compiled
# from source every time: while a provider imports a module, Python's bytecode cache lives in an
# empty folder of this process (`sys.pycache_prefix`) and nothing is written; submodules that an
# input module imports later (inside a role function, say) go through `_InputFinder`, whose loader
# ignores bytecode; and a module that exists only as bytecode (`helper.pyc` without `helper.py`)
# is not imported from an input at all.

_EMPTY_PYCACHE: Path | None = None


def _empty_pycache() -> str:
    global _EMPTY_PYCACHE
    if _EMPTY_PYCACHE is None or not _EMPTY_PYCACHE.is_dir():
        _EMPTY_PYCACHE = Path(tempfile.mkdtemp(prefix="pyclan-no-pycache-"))
        atexit.register(shutil.rmtree, _EMPTY_PYCACHE, True)
    return str(_EMPTY_PYCACHE)


@contextmanager
def _no_bytecode() -> Iterator[None]:
    """Import input modules from their sources only, writing no `__pycache__` anywhere."""
    before, prefix = sys.dont_write_bytecode, sys.pycache_prefix
    sys.dont_write_bytecode = True
    sys.pycache_prefix = _empty_pycache()
    try:
        yield
    finally:
        sys.dont_write_bytecode, sys.pycache_prefix = before, prefix


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the source file on every import; never reads or writes bytecode."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


class _InputFinder:
    """On `sys.meta_path`: submodules found inside an input folder load from source only."""

    def __init__(self) -> None:
        self.roots: set[str] = set()

    def _inside(self, path: str) -> bool:
        path = os.path.abspath(path)
        return any(path == root or path.startswith(root + os.sep) for root in self.roots)

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is None or not any(self._inside(entry) for entry in path):
            return None  # a top-level import (input modules are loaded by file), or not an input's
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None or spec.origin is None or not self._inside(spec.origin):
            return None
        if isinstance(spec.loader, importlib.machinery.SourcelessFileLoader):
            raise ImportError(
                f"{spec.origin} is compiled bytecode without its source; pyclan runs only the sources "
                "of an input (the ones its lock hash covers)",
                name=name,
            )
        if isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            spec.loader = _SourceOnlyLoader(spec.name, spec.origin)
        return spec


_FINDER = _InputFinder()


def _watch(folder: Path) -> None:
    """Route imports below `folder` through `_InputFinder` (installed once, first on meta_path)."""
    _FINDER.roots.add(os.path.abspath(folder))
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def remove_pycache(root: Path) -> None:
    """Drop stale bytecode from a cached checkout: only the hashed sources are ever run."""
    for dirpath, dirnames, _ in os.walk(root):
        if PYCACHE in dirnames:
            shutil.rmtree(Path(dirpath, PYCACHE), ignore_errors=True)
            dirnames.remove(PYCACHE)


def input_hash(name: str, root: Path, boundary: Path, path: str) -> str:
    """The tree hash of an input's folder; a symlink out of the input is an `input-error`."""
    try:
        return tree_hash(root, boundary)
    except UnsafeLink as link:
        raise ClanError.single(
            "input-error",
            path,
            f"input '{name}': {link.link} is a symlink to {link.target!r}, which {link.reason}; "
            "pyclan loads only files that the input's hash covers",
            hint="copy the file into the input, or make the link point to a file inside it",
        ) from None


def _versioned(label: str, content_hash: str) -> str:
    """A provider label that changes with the content, so edited modules are imported afresh."""
    return f"{label}@{content_hash}"


class InputFolderProvider(FolderProvider):
    """A folder of service modules from an input, imported from their sources only."""

    def load(self, name: str) -> Service:
        _watch(self.folder)
        with _no_bytecode():
            return super().load(name)


class LazyInputProvider(ServiceProvider):
    """Stands for a declared input; fetches/checks it the first time its services are needed."""

    def __init__(self, inputs: InputSet, name: str) -> None:
        self.label = name
        self._inputs = inputs

    def _inner(self) -> Provider:
        return self._inputs.resolve(self.label).provider

    def names(self) -> list[str]:
        return self._inner().names()

    def origin(self, name: str) -> str:
        return self._inner().origin(name)

    def load(self, name: str) -> Service:
        return self._inner().load(name)


def override_folder(path: Path, *, clan_core: bool = False, subdir: str = "") -> Path:
    """The folder of modules in an override PATH: PATH[/dir]/services, else PATH itself."""
    base = path / subdir if subdir else path
    candidates = [base / SERVICES_DIR]
    if clan_core:
        candidates.append(path / LIBRARY_IN_CHECKOUT)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return base


@dataclass
class InputSet:
    """The clan's declared inputs, their lock and their overrides."""

    clan_dir: Path
    specs: Mapping[str, InputSpec]
    overrides: Mapping[str, Path] = field(default_factory=dict)
    notify: Notify = _stderr
    cache_root: Path | None = None
    _lock: LockFile | None = field(default=None, init=False, repr=False)
    _resolved: dict[str, ResolvedInput] = field(default_factory=dict, init=False, repr=False)
    _failed: dict[str, ClanError] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in self.specs:
            if name in RESERVED_NAMES:
                raise ClanError.single(
                    "input-error",
                    f"inputs.{name}",
                    f"'{name}' is reserved: module.input = \"{name}\" always means this clan's own services/",
                    hint="give the input another name",
                )
        for name in sorted(self.overrides):
            if name not in self.specs and name != CLAN_CORE:
                hint = did_you_mean(name, self.specs)
                self.notify(
                    f"--override-input {name}: this clan declares no input '{name}'; the override is ignored"
                    + (f" ({hint})" if hint else "")
                )

    # -- the lock ------------------------------------------------------------------------------

    @property
    def lock(self) -> LockFile:
        if self._lock is None:
            self._lock = LockFile.load(self.clan_dir)
        return self._lock

    def _record(self, name: str, entry: LockEntry, why: str) -> None:
        """Store a new lock entry now (first use), dropping entries of undeclared inputs."""
        lock = self.lock
        lock.entries[name] = entry
        for stale in sorted(set(lock.entries) - set(self.specs)):
            del lock.entries[stale]
        try:
            lock.save()
        except OSError as err:
            raise ClanError.single(
                "input-error",
                f"inputs.{name}",
                f"input '{name}' has no entry in {LOCK_FILE}, and the lock cannot be written: {err.strerror or err}",
                file=LOCK_FILE,
                hint="make the clan directory writable, or commit a clan.lock made elsewhere",
            ) from None
        self.notify(f"{LOCK_FILE}: {why}: locked input '{name}' at {entry.short} ({entry.source})")

    # -- resolving -----------------------------------------------------------------------------

    def kind_of(self, name: str) -> Kind:
        spec = self.specs[name]
        return "git" if spec.url is not None else "path" if spec.path is not None else "package"

    def git_source(self, name: str) -> GitSource:
        url = self.specs[name].url
        assert url is not None
        return parse_git_url(url, f"inputs.{name}.url")

    def git_cache(self, source: GitSource) -> GitCache:
        return GitCache(source.fetch_url, self.cache_root)

    def path_folder(self, name: str) -> Path:
        """The folder of path input `name`; a ClanError if it does not exist."""
        raw = self.specs[name].path
        assert raw is not None
        folder = (self.clan_dir / Path(raw).expanduser()).resolve()
        if not folder.is_dir():
            raise ClanError.single(
                "input-error",
                f"inputs.{name}.path",
                f"input '{name}': the folder '{raw}' ({folder}) does not exist",
                hint="a relative path is relative to the clan directory",
            )
        return folder

    def resolve(self, name: str) -> ResolvedInput:
        """Resolve input `name` (declared or overridden) once per run."""
        if name in self._failed:  # e.g. an unreachable remote: try once per run, not once per lookup
            raise self._failed[name]
        if name not in self._resolved:
            try:
                if name in self.overrides:
                    self._resolved[name] = self._override(name)
                else:
                    kind = self.kind_of(name)
                    if kind == "git":
                        self._resolved[name] = self._git(name)
                    elif kind == "path":
                        self._resolved[name] = self._path(name)
                    else:
                        self._resolved[name] = self._package(name)
            except ClanError as err:
                self._failed[name] = err
                raise
        return self._resolved[name]

    def _override(self, name: str) -> ResolvedInput:
        path = self.overrides[name]
        if not path.is_dir():
            raise ClanError.single(
                "usage-error",
                f"--override-input {name}",
                f"the override folder '{path}' does not exist",
                hint="give the path of a local checkout of the input",
            )
        spec = self.specs.get(name)
        subdir = ""
        if spec is not None and spec.url is not None:
            subdir = self.git_source(name).dir
        folder = override_folder(path, clan_core=name == CLAN_CORE, subdir=subdir)
        label = BUNDLED_LABEL if name == CLAN_CORE else name
        return ResolvedInput(
            name=name,
            kind=self.kind_of(name) if spec is not None else None,
            source=str(path),
            provider=InputFolderProvider(
                _versioned(label, input_hash(name, folder, path, f"--override-input {name}")), folder
            ),
            root=path,
            overridden=True,
        )

    def _fail(self, name: str, err: GitFailed) -> ClanError:
        return ClanError.single(
            "input-error",
            f"inputs.{name}.url",
            f"input '{name}': {err.action} failed: {err.detail}",
            hint="check the URL, your network and your git credentials; "
            "inputs whose locked commit is already cached need no network",
        )

    def _git(self, name: str) -> ResolvedInput:
        source = self.git_source(name)
        cache = self.git_cache(source)
        entry = self.lock.entries.get(name)
        try:
            if entry is None or entry.kind != "git" or entry.source != source.url:
                why = "new input" if entry is None else "declaration changed"
                commit = cache.fetch(source.wanted)
                tree = cache.checkout(commit, fresh=True)
                hashed = input_hash(name, tree, tree, f"inputs.{name}.url")
                entry = LockEntry("git", source.url, rev=commit, hash=hashed)
                self._record(name, entry, why)
            else:
                assert entry.rev is not None
                was_cached = cache.checkout_dir(entry.rev).is_dir()
                tree = cache.checkout(entry.rev)
                remove_pycache(tree)
                actual = input_hash(name, tree, tree, f"inputs.{name}.url")
                if actual != entry.hash:
                    raise self._mismatch(name, entry, actual, tree, was_cached)
        except GitFailed as err:
            raise self._fail(name, err) from None
        except OSError as err:
            raise ClanError.single(
                "input-error",
                f"inputs.{name}",
                f"input '{name}': cannot use the input cache {cache.dir}: {err.strerror or err}",
                hint="make the folder writable, or point $PYCLAN_CACHE_DIR at a writable folder",
            ) from None
        folder = tree / source.dir / SERVICES_DIR if source.dir else tree / SERVICES_DIR
        return ResolvedInput(
            name=name,
            kind="git",
            source=source.url,
            provider=InputFolderProvider(name, folder),
            entry=entry,
            root=tree,
        )

    def _mismatch(self, name: str, entry: LockEntry, actual: str, tree: Path, was_cached: bool) -> ClanError:
        if was_cached:
            message = (
                f"input '{name}': the cached checkout of commit {entry.rev} has been modified: "
                f"its content hash is {actual}, but {LOCK_FILE} says {entry.hash}. Refusing to load it."
            )
            hint = f"delete the folder {tree} (pyclan checks it out again) or run `pyclan inputs update {name}`"
        else:
            message = (
                f"input '{name}': commit {entry.rev} was fetched, but its content hash is {actual} "
                f"while {LOCK_FILE} says {entry.hash}. Refusing to load it."
            )
            hint = (
                f"the lock entry may have been edited; if you trust the source, run `pyclan inputs update {name}` "
                "and review what it reports"
            )
        return ClanError.single("input-error", f"inputs.{name}", message, file=LOCK_FILE, hint=hint)

    def _path(self, name: str) -> ResolvedInput:
        folder = self.path_folder(name)
        raw = self.specs[name].path or ""
        services = folder / SERVICES_DIR
        actual = input_hash(name, services, folder, f"inputs.{name}.path")
        entry = self.lock.entries.get(name)
        if entry is None or entry.kind != "path" or entry.source != raw:
            entry = LockEntry("path", raw, hash=actual)
            self._record(name, entry, "new input" if name not in self.lock.entries else "declaration changed")
        elif entry.hash != actual:
            raise ClanError.single(
                "input-error",
                f"inputs.{name}.path",
                f"input '{name}': the content of {services} changed since it was locked "
                f"(now {actual}, {LOCK_FILE} says {entry.hash})",
                file=LOCK_FILE,
                hint=f"review the change, then run `pyclan inputs update {name}` to accept it; "
                f"while developing, `--override-input {name} {raw}` uses the folder without the lock",
            )
        return ResolvedInput(
            name=name,
            kind="path",
            source=raw,
            provider=InputFolderProvider(_versioned(name, actual), services),
            entry=entry,
            root=folder,
        )

    def _package(self, name: str) -> ResolvedInput:
        package = self.specs[name].package
        assert package is not None
        version = installed_version(package)
        if version is None:
            raise not_installed(name, package)
        entry = self.lock.entries.get(name)
        if entry is None or entry.kind != "package" or entry.source != package:
            entry = LockEntry("package", package, version=version)
            self._record(name, entry, "new input" if name not in self.lock.entries else "declaration changed")
        elif entry.version != version:
            raise ClanError.single(
                "input-error",
                f"inputs.{name}.package",
                f"input '{name}': '{package}' {version} is installed, but {LOCK_FILE} locks version {entry.version}",
                file=LOCK_FILE,
                hint=f"install {package}=={entry.version}, or run `pyclan inputs update {name}` "
                f"to lock version {version}",
            )
        return ResolvedInput(
            name=name, kind="package", source=package, provider=PackageProvider(name, package), entry=entry
        )

    # -- for the registry ----------------------------------------------------------------------

    def names(self) -> list[str]:
        """Declared inputs plus `clan-core` when it is overridden (other undeclared overrides are ignored)."""
        extra = [CLAN_CORE] if CLAN_CORE in self.overrides and CLAN_CORE not in self.specs else []
        return sorted({*self.specs, *extra})

    def providers(self) -> dict[str, Provider]:
        result: dict[str, Provider] = {}
        for name in self.names():
            if name in self.overrides:
                result[name] = self.resolve(name).provider  # fail early on a wrong override path
            else:
                result[name] = LazyInputProvider(self, name)
        return result


def providers_for(
    clan_dir: Path,
    inputs: Mapping[str, InputSpec],
    input_overrides: Mapping[str, Path] | None = None,
    *,
    notify: Notify | None = None,
    cache_root: Path | None = None,
) -> dict[str, Provider]:
    """Providers for the registry: one per declared input (lazy), plus overridden ones.

    Under the key `clan-core` (when overridden and not declared) is the replacement for the
    bundled library; `Clan.registry` passes it to the registry as `bundled`.
    """
    input_set = InputSet(
        clan_dir, inputs, dict(input_overrides or {}), notify=notify or _stderr, cache_root=cache_root
    )
    return input_set.providers()
