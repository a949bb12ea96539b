"""The manifest of a generation: everything a host must look like, as content hashes.

A `MachineConfig` is turned into a manifest plus an objects map (sha256 → bytes). The manifest
holds no file content and no secret value — secrets appear as references with a digest of
their *encrypted* form, so a re-generated secret changes the generation id without the
manifest revealing anything about the value. The generation id is the sha256 of the
manifest's canonical bytes, so equal configurations give equal ids on every controller.

Derived things are resolved here, once, so that the activation script only executes:
unit files and their enablement links become managed paths, `authorized_keys` become files,
users get their full list of supplementary groups, hooks are put in order, and every unit
gets a restart stamp that changes exactly when the unit or one of its `restart_on` paths does
(units pyclan does not own but reloads get one as well). Health checks are validated here.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from pyclan.build.layout import HOST_ROOT, SECRETS, UNIT_DIR
from pyclan.build.units import enablement_links
from pyclan.config.machine_config import MachineConfig, construct
from pyclan.errors import ProblemList, did_you_mean

FORMAT = 1

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]*\$?$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")
_UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.(service|socket|timer|target|path|mount|automount|swap|slice)$")
_FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev", "/run", HOST_ROOT)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def make(cls, **values: Any) -> Self:
        """An entry from values of *every* field that the build already checked (no validation
        pass: a build makes one per file, user and unit of every machine)."""
        return construct(cls, values)


class FileEntry(_Entry):
    sha256: str
    mode: str
    owner: str
    group: str


class UserEntry(_Entry):
    name: str
    uid: int | None = None
    group: str | None = None  # primary group; None: a group named like the user
    groups: tuple[str, ...] = ()  # every supplementary group (declared ∪ groups listing it)
    shell: str | None = None
    home: str  # the declared home, else root's /root or /home/<name>
    set_home: bool = False  # home was declared: also applied to an existing user
    create_home: bool = True
    system: bool = False
    description: str | None = None
    password_file: str | None = None  # path on the host holding a crypt(3) hash


class GroupEntry(_Entry):
    name: str
    gid: int | None = None
    system: bool = False
    members: tuple[str, ...] = ()  # members that are not users of this config (added, never removed)


class UnitEntry(_Entry):
    name: str
    sha256: str
    enabled: bool
    start: bool
    restart_on: tuple[str, ...] = ()
    stamp: str  # changes when the unit file or a restart_on path changes


class HookEntry(_Entry):
    name: str
    sha256: str
    after: tuple[str, ...] = ()


class ReloadEntry(_Entry):
    """A unit pyclan does not own, reloaded when its stamp (from the `on` paths) changes."""

    unit: str
    on: tuple[str, ...]
    action: str  # the systemctl verb: reload-or-restart or restart
    stamp: str


class CheckEntry(_Entry):
    name: str
    kind: str  # unit, tcp, udp, http, command
    target: str
    timeout: int


class SecretEntry(_Entry):
    path: str
    generator: str
    file: str
    shared: bool
    owner: str
    group: str
    mode: str
    digest: str  # sha256 of the encrypted var, never of the value


class Manifest(BaseModel):
    """What one machine must look like; `id` is the generation id."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    format: int = FORMAT
    machine: str
    activator: str = ""  # hash of the activation script's code: a new pyclan re-activates
    files: dict[str, FileEntry] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict)  # managed path → symlink target
    packages: list[str] = Field(default_factory=list)
    groups: dict[str, GroupEntry] = Field(default_factory=dict)
    users: dict[str, UserEntry] = Field(default_factory=dict)
    units: dict[str, UnitEntry] = Field(default_factory=dict)
    hooks: list[HookEntry] = Field(default_factory=list)  # in execution order
    secrets: dict[str, SecretEntry] = Field(default_factory=dict)
    reloads: dict[str, ReloadEntry] = Field(default_factory=dict)
    checks: list[CheckEntry] = Field(default_factory=list)  # by name
    steps: dict[str, str] = Field(default_factory=dict)  # skippable activation step → digest of its inputs

    def to_bytes(self) -> bytes:
        """Canonical form: the bytes whose sha256 is the generation id."""
        return (json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1) + "\n").encode()

    @property
    def id(self) -> str:
        return sha256(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        return cls.model_validate(json.loads(data))

    def managed_paths(self) -> list[str]:
        """Every path that becomes a symlink into the generation (files and links)."""
        return sorted({*self.files, *self.links})

    def systemd_files(self) -> list[str]:
        """`path content-or-target` of managed files below /etc/systemd other than unit files (drop-ins, …):
        a change needs a daemon-reload."""
        unit_files = {f"{UNIT_DIR}/{name}" for name in self.units}
        return [
            f"{path} {self.files[path].sha256 if path in self.files else self.links[path]}"
            for path in self.managed_paths()
            if path.startswith("/etc/systemd/") and path not in unit_files
        ]

    def step_digests(self) -> dict[str, str]:
        """What each skippable activation step reads, hashed: the host skips a step whose digest
        equals the one it last applied. Hooks may read anything but the units (their files and
        enablement links), so they run when any other file, link, secret, package, user or hook changed."""
        unit_files = {f"{UNIT_DIR}/{name}" for name in self.units}
        files = {p: f for p, f in self.files.items() if p not in unit_files}
        links = {p: t for p, t in self.links.items() if t not in unit_files}
        users = {
            "groups": self.groups, "users": self.users,
            "passwords": {u.name: self._content_digest(u.password_file) for u in self.users.values()
                          if u.password_file},
            "ssh_dirs": sorted(p for p in self.files if p.endswith("/.ssh/authorized_keys")),
        }
        parts: dict[str, Any] = {
            "packages": self.packages,
            "users": users,
            "units": {"units": self.units, "systemd": self.systemd_files()},
            "reloads": self.reloads,
            "hooks": {"hooks": self.hooks, "files": files, "links": links, "secrets": self.secrets,
                      "packages": self.packages, "users": users},
        }
        return {step: _digest({"activator": self.activator, "step": part}) for step, part in parts.items()}

    def _content_digest(self, path: str) -> str:
        if path in self.secrets:
            return self.secrets[path].digest
        if path in self.files:
            return self.files[path].sha256
        return "-"  # a file pyclan does not manage: only its path is known

    def object_ids(self) -> list[str]:
        ids = {f.sha256 for f in self.files.values()} | {h.sha256 for h in self.hooks}
        return sorted(ids)


def _digest(value: Any) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump(mode="json")
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return sha256(json.dumps(plain(value), sort_keys=True).encode())[:16]


@lru_cache(maxsize=1 << 16)
def check_path(path: str) -> str | None:
    """Why `path` cannot be a managed path, or None if it can (cached: every machine of a fleet
    tends to declare the same paths)."""
    if not path.startswith("/"):
        return "must be an absolute path"
    if any(c in path for c in "\n\t\r\0"):
        return "must not contain control characters"
    if posixpath.normpath(path) != path or path.startswith("//"):
        return f"must be normalised (write {posixpath.normpath(path)!r})"
    if path == "/":
        return "cannot be '/'"
    for root in _FORBIDDEN_ROOTS:
        if path == root or path.startswith(root + "/"):
            return f"is below {root}, which pyclan does not manage as files"
    return None


_URL_RE = re.compile(r"^https?://[^\s'\"\\]+$")
_CHECK_NAME_RE = re.compile(r"^[A-Za-z0-9_.@:-]+$")


def _check_problem(kind: str, target: str) -> str | None:
    """Why a check's target is unusable, or None."""
    if kind == "unit":
        return None if _UNIT_RE.match(target) else f"{target!r} is not a systemd unit name"
    if kind in ("tcp", "udp"):
        ok = target.isdigit() and 0 < int(target) < 65536
        return None if ok else f"port {target!r} is not a number from 1 to 65535"
    if kind == "http":
        return None if _URL_RE.match(target) else f"{target!r} is not an http:// or https:// URL"
    return None if target.strip() else "the command is empty"


def _check_entries(config: MachineConfig, where: str, problems: ProblemList) -> list[CheckEntry]:
    out: list[CheckEntry] = []
    for name, c in sorted(config.checks.items()):
        reason = None if _CHECK_NAME_RE.match(name) else f"invalid check name {name!r}"
        reason = reason or _check_problem(c.kind, c.target)
        if reason:
            problems.add("deploy-error", f"{where}.checks.{name}", f"health check {name!r}: {reason}",
                         hint="a check names a unit (x.service), a port (1-65535), an http(s) URL or a command")
            continue
        out.append(CheckEntry.make(name=name, kind=c.kind, target=c.target, timeout=c.timeout))
    return out


def _hook_order(hooks: Mapping[str, Any], machine: str, problems: ProblemList) -> list[str]:
    """Hooks sorted so that each runs after the hooks it names (ties by name)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            problems.add(
                "deploy-error", f"machines.{machine}.hooks.{name}", f"hooks depend on each other in a cycle: {cycle}",
                hint="remove one of the `after` entries",
            )
            return
        state[name] = 1
        for dep in sorted(hooks[name].after):
            if dep in hooks:  # a hook of a service not on this machine: nothing to wait for
                visit(dep, [*chain, name])
        state[name] = 2
        order.append(name)

    for name in sorted(hooks):
        visit(name, [])
    return order


@lru_cache(maxsize=1 << 14)
def _file_entry(content: str, mode: str, owner: str, group: str) -> tuple[FileEntry, bytes]:
    """A file's entry and its object (cached: a fleet's machines tend to share most files)."""
    data = content.encode()
    return FileEntry.make(sha256=sha256(data), mode=mode, owner=owner, group=group), data


@dataclass
class _Build:
    """What the per-kind functions below share while one manifest is built."""

    machine: str
    config: MachineConfig
    problems: ProblemList = field(default_factory=ProblemList)
    objects: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"machines.{self.machine}"

    def error(self, what: str, message: str, hint: str | None = None, kind: str = "deploy-error") -> None:
        self.problems.add(kind, f"{self.where}.{what}", message, hint=hint)

    def obj(self, data: bytes) -> str:
        """Store `data` as an object; its key is its sha256."""
        key = sha256(data)
        self.objects[key] = data
        return key

    def add_file(self, path: str, entry: FileEntry, what: str) -> None:
        reason = check_path(path)
        if reason:
            self.error(what, f"path {path!r} {reason}")
        elif path in self.files or path in self.links:
            self.error(what, f"{path} is defined twice (file, unit, user or link)")
        else:
            self.files[path] = entry

    def add_link(self, path: str, target: str, what: str) -> None:
        reason = check_path(path)
        if reason:
            self.error(what, f"path {path!r} {reason}")
        elif path in self.files:
            self.error(what, f"{path} is both a file and a link")
        else:
            self.links[path] = target


_NAME_HINT = "use lowercase letters, digits, '_' and '-', at most 32 characters"


def _valid_name(name: str) -> bool:
    return bool(_NAME_RE.match(name)) and len(name) <= 32


def _files(b: _Build) -> None:
    for path, f in sorted(b.config.files.items()):
        entry, data = _file_entry(f.content, f.mode, f.owner, f.group)
        b.objects[entry.sha256] = data
        b.add_file(path, entry, f"files.{path}")


def _groups(b: _Build) -> dict[str, GroupEntry]:
    """Groups; members that are users of this config go to the users' group lists instead."""
    groups: dict[str, GroupEntry] = {}
    for name, g in sorted(b.config.groups.items()):
        if not _valid_name(name):
            b.error(f"groups.{name}", f"invalid group name {name!r}", hint=_NAME_HINT)
        extra = tuple(sorted(m for m in g.members if m not in b.config.users))
        groups[name] = GroupEntry.make(name=name, gid=g.gid, system=g.system, members=extra)
    return groups


def _users(b: _Build) -> dict[str, UserEntry]:
    """Users with every supplementary group; their `authorized_keys` become files."""
    member_of: dict[str, set[str]] = {}
    for group, g in b.config.groups.items():
        for m in g.members:
            member_of.setdefault(m, set()).add(group)
    users: dict[str, UserEntry] = {}
    for name, u in sorted(b.config.users.items()):
        if not _valid_name(name):
            b.error(f"users.{name}", f"invalid user name {name!r}", hint=_NAME_HINT)
            continue
        home = u.home or ("/root" if name == "root" else f"/home/{name}")
        supplementary = tuple(sorted(set(u.groups) | member_of.get(name, set())))
        users[name] = UserEntry.make(
            name=name, uid=u.uid, group=u.group, groups=supplementary, shell=u.shell, home=home,
            set_home=u.home is not None, create_home=u.create_home, system=u.system, description=u.description,
            password_file=u.hashed_password_file,
        )
        if u.authorized_keys:
            text = "".join(k.strip() + "\n" for k in u.authorized_keys)
            entry = FileEntry.make(sha256=b.obj(text.encode()), mode="0600", owner=name, group=u.group or name)
            b.add_file(f"{home.rstrip('/')}/.ssh/authorized_keys", entry, f"users.{name}.authorized_keys")
    return users


def _unit_files(b: _Build) -> dict[str, str]:
    """Unit files and their enablement links become managed paths; unit name → object key."""
    keys: dict[str, str] = {}
    for name, unit in sorted(b.config.units.items()):
        if not _UNIT_RE.match(name):
            b.error(f"units.{name}", f"invalid systemd unit name {name!r}",
                    hint="a unit name ends in .service, .socket, .timer, .target, .path, .mount, … ")
            continue
        key = keys[name] = b.obj(unit.content.encode())
        b.add_file(f"{UNIT_DIR}/{name}", FileEntry.make(sha256=key, mode="0644", owner="root", group="root"),
                   f"units.{name}")
        if unit.enabled:
            for link, target in sorted(enablement_links(name, unit.content).items()):
                b.add_link(link, target, f"units.{name}")
    return keys


def _secrets(b: _Build, digests: Mapping[str, str]) -> dict[str, SecretEntry]:
    """Secret references (digest of the encrypted value); a non-canonical path becomes a link."""
    secrets: dict[str, SecretEntry] = {}
    for path, s in sorted(b.config.secrets.items()):
        digest = digests.get(path)
        if digest is None:
            b.error(f"secrets.{path}", f"secret {s.generator}/{s.file} has not been generated yet",
                    hint=f"run `pyclan vars generate {b.machine}`", kind="vars-error")
            continue
        secrets[path] = SecretEntry.make(path=path, generator=s.generator, file=s.file, shared=s.shared,
                                    owner=s.owner, group=s.group, mode=s.mode, digest=digest)
        canonical = f"{SECRETS}/{s.generator}/{s.file}"
        if path != canonical:
            b.add_link(path, canonical, f"secrets.{path}")
    return secrets


def _stamp(b: _Build, secrets: Mapping[str, SecretEntry], first: str, triggers: tuple[str, ...], what: str) -> str:
    """A digest that changes exactly when `first` or one of the `triggers` paths changes."""
    parts = [first]
    for trigger in triggers:
        if trigger in b.files:
            parts.append(f"{trigger}={b.files[trigger].sha256}")
        elif trigger in secrets:
            parts.append(f"{trigger}={secrets[trigger].digest}")
        elif trigger in b.config.secrets:
            continue  # not generated yet: reported by _secrets
        else:
            hint = did_you_mean(trigger, [*b.files, *secrets])
            b.error(what, f"{what.rsplit('.', 1)[-1]} names {trigger!r}, which this machine's configuration "
                    "does not manage", hint=hint or "name a file or secret path of the same machine")
    return sha256("\n".join(parts).encode())[:16]


def _units(b: _Build, keys: Mapping[str, str], secrets: Mapping[str, SecretEntry]) -> dict[str, UnitEntry]:
    """Units with their restart stamps (after every file is known: `restart_on` may name any)."""
    units: dict[str, UnitEntry] = {}
    for name, unit in sorted(b.config.units.items()):
        if name in keys:
            stamp = _stamp(b, secrets, keys[name], unit.restart_on, f"units.{name}.restart_on")
            units[name] = UnitEntry.make(name=name, sha256=keys[name], enabled=unit.enabled, start=unit.start,
                                    restart_on=tuple(unit.restart_on), stamp=stamp)
    return units


def _reloads(b: _Build, secrets: Mapping[str, SecretEntry]) -> dict[str, ReloadEntry]:
    reloads: dict[str, ReloadEntry] = {}
    for name, r in sorted(b.config.reloads.items()):
        if not _UNIT_RE.match(name) or name in b.config.units:
            why = "pyclan owns this unit: use restart_on" if name in b.config.units else "invalid systemd unit name"
            b.error(f"reloads.{name}", f"{why} {name!r}")
            continue
        action = "restart" if r.restart else "reload-or-restart"
        stamp = _stamp(b, secrets, action, r.on, f"reloads.{name}.on")
        reloads[name] = ReloadEntry.make(unit=name, on=r.on, action=action, stamp=stamp)
    return reloads


def _packages(b: _Build) -> list[str]:
    for name in b.config.packages:
        if not _PACKAGE_RE.match(name):
            b.error("packages", f"invalid Debian package name {name!r}",
                    hint="package names use lowercase letters, digits, '+', '-' and '.'")
    return sorted(set(b.config.packages))


def _hooks(b: _Build) -> list[HookEntry]:
    """Hooks in execution order, their scripts as objects."""
    for name in b.config.hooks:
        if not _CHECK_NAME_RE.match(name):
            b.error(f"hooks.{name}", f"invalid hook name {name!r}", hint="use letters, digits and _ . @ : -")
    hooks = b.config.hooks
    return [HookEntry.make(name=n, sha256=b.obj(hooks[n].script.encode()), after=tuple(hooks[n].after))
            for n in _hook_order(hooks, b.machine, b.problems)]


def build_manifest(
    machine: str, config: MachineConfig, secret_digests: Mapping[str, str], activator: str = "", steps: bool = True
) -> tuple[Manifest, dict[str, bytes]]:
    """Resolve `config` into a manifest and the objects it refers to.

    `secret_digests` maps each secret's host path to the digest of its encrypted value.
    Raises a ClanError listing every problem (bad paths, names, clashes, cycles).
    """
    b = _Build(machine, config)
    _files(b)
    groups = _groups(b)
    users = _users(b)
    unit_keys = _unit_files(b)
    secrets = _secrets(b, secret_digests)
    units = _units(b, unit_keys, secrets)  # stamps last: they name files and secrets of any kind
    reloads = _reloads(b, secrets)
    packages = _packages(b)
    hooks = _hooks(b)
    checks = _check_entries(config, b.where, b.problems)
    b.problems.raise_if_any()
    manifest = construct(Manifest, {
        "format": FORMAT, "machine": machine, "activator": activator, "files": b.files, "links": b.links,
        "packages": packages, "groups": groups, "users": users, "units": units, "hooks": hooks,
        "secrets": secrets, "reloads": reloads, "checks": checks,
    })  # fmt: skip
    if steps:  # what the host compares to skip steps; `check` only validates and leaves them out
        manifest.steps = manifest.step_digests()
    return manifest, b.objects


def empty_manifest(machine: str, activator: str = "") -> Manifest:
    """Generation 0 of every host: nothing declared (rolling back to it undoes pyclan)."""
    manifest = Manifest(machine=machine, activator=activator)
    manifest.steps = manifest.step_digests()
    return manifest
