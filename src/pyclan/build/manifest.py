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

    def object_ids(self) -> list[str]:
        ids = {f.sha256 for f in self.files.values()} | {h.sha256 for h in self.hooks}
        return sorted(ids)


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


def build_manifest(
    machine: str, config: MachineConfig, secret_digests: Mapping[str, str], activator: str = ""
) -> tuple[Manifest, dict[str, bytes]]:
    """Resolve `config` into a manifest and the objects it refers to.

    `secret_digests` maps each secret's host path to the digest of its encrypted value.
    Raises a ClanError listing every problem (bad paths, names, clashes, cycles).
    """
    problems = ProblemList()
    objects: dict[str, bytes] = {}
    files: dict[str, FileEntry] = {}
    links: dict[str, str] = {}
    where = f"machines.{machine}"

    def obj(data: bytes) -> str:
        key = sha256(data)
        objects[key] = data
        return key

    def add_file(path: str, entry: FileEntry, what: str) -> None:
        reason = check_path(path)
        if reason:
            problems.add("deploy-error", f"{where}.{what}", f"path {path!r} {reason}")
        elif path in files or path in links:
            problems.add("deploy-error", f"{where}.{what}", f"{path} is defined twice (file, unit, user or link)")
        else:
            files[path] = entry

    def add_link(path: str, target: str, what: str) -> None:
        reason = check_path(path)
        if reason:
            problems.add("deploy-error", f"{where}.{what}", f"path {path!r} {reason}")
        elif path in files:
            problems.add("deploy-error", f"{where}.{what}", f"{path} is both a file and a link")
        else:
            links[path] = target

    for path, f in sorted(config.files.items()):
        entry, data = _file_entry(f.content, f.mode, f.owner, f.group)
        objects[entry.sha256] = data
        add_file(path, entry, f"files.{path}")

    # groups: members that are users of this config go to the users' group lists
    member_of: dict[str, set[str]] = {}
    groups: dict[str, GroupEntry] = {}
    for name, g in sorted(config.groups.items()):
        if not _NAME_RE.match(name) or len(name) > 32:
            problems.add("deploy-error", f"{where}.groups.{name}", f"invalid group name {name!r}",
                         hint="use lowercase letters, digits, '_' and '-', at most 32 characters")
        for m in g.members:
            member_of.setdefault(m, set()).add(name)
        extra = tuple(sorted(m for m in g.members if m not in config.users))
        groups[name] = GroupEntry.make(name=name, gid=g.gid, system=g.system, members=extra)

    users: dict[str, UserEntry] = {}
    for name, u in sorted(config.users.items()):
        if not _NAME_RE.match(name) or len(name) > 32:
            problems.add("deploy-error", f"{where}.users.{name}", f"invalid user name {name!r}",
                         hint="use lowercase letters, digits, '_' and '-', at most 32 characters")
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
            entry = FileEntry.make(sha256=obj(text.encode()), mode="0600", owner=name, group=u.group or name)
            add_file(f"{home.rstrip('/')}/.ssh/authorized_keys", entry, f"users.{name}.authorized_keys")

    units: dict[str, UnitEntry] = {}
    unit_files: dict[str, str] = {}
    for name, unit in sorted(config.units.items()):
        if not _UNIT_RE.match(name):
            problems.add("deploy-error", f"{where}.units.{name}", f"invalid systemd unit name {name!r}",
                         hint="a unit name ends in .service, .socket, .timer, .target, .path, .mount, … ")
            continue
        key = obj(unit.content.encode())
        unit_files[name] = key
        entry = FileEntry.make(sha256=key, mode="0644", owner="root", group="root")
        add_file(f"{UNIT_DIR}/{name}", entry, f"units.{name}")
        if unit.enabled:
            for link, target in sorted(enablement_links(name, unit.content).items()):
                add_link(link, target, f"units.{name}")

    secrets: dict[str, SecretEntry] = {}
    for path, s in sorted(config.secrets.items()):
        digest = secret_digests.get(path)
        if digest is None:
            problems.add("vars-error", f"{where}.secrets.{path}",
                         f"secret {s.generator}/{s.file} has not been generated yet",
                         hint=f"run `pyclan vars generate {machine}`")
            continue
        secrets[path] = SecretEntry.make(path=path, generator=s.generator, file=s.file, shared=s.shared,
                                    owner=s.owner, group=s.group, mode=s.mode, digest=digest)
        canonical = f"{SECRETS}/{s.generator}/{s.file}"
        if path != canonical:
            add_link(path, canonical, f"secrets.{path}")

    def stamp(first: str, triggers: tuple[str, ...], what: str) -> str:
        parts = [first]
        for trigger in triggers:
            if trigger in files:
                parts.append(f"{trigger}={files[trigger].sha256}")
            elif trigger in secrets:
                parts.append(f"{trigger}={secrets[trigger].digest}")
            elif trigger in config.secrets:
                continue  # not generated yet: reported above
            else:
                hint = did_you_mean(trigger, [*files, *secrets])
                problems.add("deploy-error", f"{where}.{what}",
                             f"{what.rsplit('.', 1)[-1]} names {trigger!r}, which this machine's configuration "
                             "does not manage", hint=hint or "name a file or secret path of the same machine")
        return sha256("\n".join(parts).encode())[:16]

    for name, unit in sorted(config.units.items()):
        if name not in unit_files:
            continue
        units[name] = UnitEntry.make(name=name, sha256=unit_files[name], enabled=unit.enabled, start=unit.start,
                                restart_on=tuple(unit.restart_on),
                                stamp=stamp(unit_files[name], unit.restart_on, f"units.{name}.restart_on"))

    reloads: dict[str, ReloadEntry] = {}
    for name, r in sorted(config.reloads.items()):
        if not _UNIT_RE.match(name) or name in config.units:
            why = "pyclan owns this unit: use restart_on" if name in config.units else "invalid systemd unit name"
            problems.add("deploy-error", f"{where}.reloads.{name}", f"{why} {name!r}")
            continue
        action = "restart" if r.restart else "reload-or-restart"
        reloads[name] = ReloadEntry.make(
            unit=name, on=r.on, action=action, stamp=stamp(action, r.on, f"reloads.{name}.on")
        )

    for name in config.packages:
        if not _PACKAGE_RE.match(name):
            problems.add("deploy-error", f"{where}.packages", f"invalid Debian package name {name!r}",
                         hint="package names use lowercase letters, digits, '+', '-' and '.'")

    order = _hook_order(config.hooks, machine, problems)
    hooks = [
        HookEntry.make(name=n, sha256=obj(config.hooks[n].script.encode()), after=tuple(config.hooks[n].after))
        for n in order
    ]
    for name in config.hooks:
        if not re.match(r"^[A-Za-z0-9_.@:-]+$", name):
            problems.add("deploy-error", f"{where}.hooks.{name}", f"invalid hook name {name!r}",
                         hint="use letters, digits and _ . @ : -")
    checks = _check_entries(config, where, problems)
    problems.raise_if_any()
    manifest = construct(Manifest, {
        "format": FORMAT, "machine": machine, "activator": activator, "files": files, "links": links,
        "packages": sorted(set(config.packages)), "groups": groups, "users": users, "units": units, "hooks": hooks,
        "secrets": secrets, "reloads": reloads, "checks": checks,
    })  # fmt: skip
    return manifest, objects


def empty_manifest(machine: str, activator: str = "") -> Manifest:
    """Generation 0 of every host: nothing declared (rolling back to it undoes pyclan)."""
    return Manifest(machine=machine, activator=activator)
