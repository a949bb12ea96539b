"""MachineConfig: pyclan's answer to a NixOS module.

A declarative description of one host: files, packages, users and groups, systemd units and
named activation hooks. Services return fragments; `merge.py` combines the fragments of all
services into one config per machine. Everything here is plain data (pydantic, JSON-able) so a
generation can be built and diffed from it, and deploy can remove what is no longer declared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

_MODE_PATTERN = r"^[0-7]{3,4}$"
_MODE = re.compile(_MODE_PATTERN)
_CHECKED_MODES = frozenset({"0644", "0600", "0755", "0400", "0444", "0700", "0640", "0750"})


def construct(cls: type[_M], values: dict[str, Any]) -> _M:
    """An instance from already-checked values of *every* field, without pydantic's validation
    pass (about twice as fast as validating, and four times faster than `model_construct`).
    For the builders here and the build (`build.manifest`): validate at the edges, construct inside."""
    obj = _new(cls)
    _set_dict(obj, values)
    _set_fields_set(obj, set(values))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


# The slots of every pydantic model, set directly (frozen models refuse setattr).
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _text(what: str, value: Any) -> str:
    """The builders' cheap type check (they construct specs without pydantic validation)."""
    if type(value) is not str:
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    return value


_M = TypeVar("_M", bound=BaseModel)

# Names that become host state. The same rules as the build (`deploy.manifest`), checked when fragments
# merge (`merge.merge_fragments`) so that an error names the service, instance and role that declared them.
ACCOUNT_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]*\$?$")  # Debian's useradd/groupadd (NAME_REGEX)
ACCOUNT_NAME_MAX = 32
PACKAGE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")  # Debian policy 5.6.1, optional :arch
UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]+\.(service|socket|timer|target|path|mount|automount|swap|slice)$")
HOOK_NAME_RE = re.compile(r"^[A-Za-z0-9_.@:-]+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class FileSpec(_Frozen):
    """A regular file with literal content (never a secret: secrets come from vars)."""

    path: str
    content: str
    mode: str = Field(default="0644", pattern=_MODE_PATTERN)
    owner: str = "root"
    group: str = "root"


class UserSpec(_Frozen):
    """A local user. Unset (None) fields are left to the system's defaults."""

    name: str
    uid: int | None = None
    group: str | None = None  # primary group; None: a group named like the user
    groups: tuple[str, ...] = ()  # supplementary groups
    shell: str | None = None
    home: str | None = None
    create_home: bool = True
    system: bool = False
    description: str | None = None
    authorized_keys: tuple[str, ...] = ()
    hashed_password_file: str | None = None  # path on the host of a file holding a crypt(3) hash


class GroupSpec(_Frozen):
    name: str
    gid: int | None = None
    system: bool = False
    members: tuple[str, ...] = ()


class UnitSpec(_Frozen):
    """A systemd unit file under /etc/systemd/system.

    `restart_on` lists host paths (files of this config, secrets) whose change restarts the
    unit on update, like NixOS's `restartTriggers`.
    """

    name: str
    content: str
    enabled: bool = True
    start: bool = True
    restart_on: tuple[str, ...] = ()


class HookSpec(_Frozen):
    """A named POSIX-sh snippet run on every activation, after files, users and units."""

    name: str
    script: str
    after: tuple[str, ...] = ()  # names of hooks that must run first


class SecretFileSpec(_Frozen):
    """A secret var file placed on the host at deploy time; only the reference is evaluated.

    The value itself stays age-encrypted in the clan directory until deploy decrypts it.
    """

    path: str  # where it lands on the host
    generator: str
    file: str
    shared: bool = False
    owner: str = "root"
    group: str = "root"
    mode: str = Field(default="0400", pattern=_MODE_PATTERN)
    needed_for: str = "services"


STATE_DIR = "/etc/pyclan/state"  # on the host: <name>/folders and <name>/<hook> for backup providers
BACKUP_PROVIDERS_DIR = "/etc/pyclan/backups"  # on the host: <provider>/{create,list,restore}
_STATE_HOOKS = ("pre-backup", "post-backup", "pre-restore", "post-restore")


class StateSpec(_Frozen):
    """Folders holding a machine's data that backups must cover (Clan's `clan.core.state.<name>`).

    The scripts are Clan's `preBackupScript` … `postRestoreScript` (POSIX sh, run as root with
    `set -eu`); `stop_on_restore` names units stopped before a restore and started after it.
    """

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]+$")
    folders: tuple[str, ...]
    pre_backup_script: str | None = None
    post_backup_script: str | None = None
    pre_restore_script: str | None = None
    post_restore_script: str | None = None
    stop_on_restore: tuple[str, ...] = ()

    def scripts(self) -> dict[str, str]:
        """Hook name (`pre-backup`, …) → script, for the hooks that are set."""
        given = (self.pre_backup_script, self.post_backup_script, self.pre_restore_script, self.post_restore_script)
        return {hook: script for hook, script in zip(_STATE_HOOKS, given, strict=True) if script is not None}

    def command(self, hook: str) -> str | None:
        """The host path of a hook's command (Clan's `preBackupCommand` …), None if the hook is unset."""
        return f"{STATE_DIR}/{self.name}/{hook}" if hook in self.scripts() else None


CheckKind = Literal["unit", "tcp", "udp", "http", "command"]


class CheckSpec(_Frozen):
    """A health check the host runs after each activation (see `MachineConfig.check`).

    It is retried until it passes or `timeout` seconds have gone by; failing, the host switches
    back to its previous generation by itself.
    """

    name: str
    kind: CheckKind
    target: str  # the unit, port, URL or sh command
    timeout: int = Field(default=10, ge=1, le=3600)


class ReloadSpec(_Frozen):
    """A unit pyclan does not own (e.g. a package's ssh.service), reloaded when `on` paths change.

    Also when a later generation no longer declares it, so that leaving a generation (rollback)
    converges like entering one.
    """

    unit: str
    on: tuple[str, ...]
    restart: bool = False  # `systemctl restart` instead of `reload-or-restart`


@dataclass(frozen=True)
class Origin:
    """Who contributed a definition: service, instance, role (role None for perMachine)."""

    service: str
    instance: str | None = None
    role: str | None = None

    def __str__(self) -> str:
        parts = [f"service '{self.service}'"]
        if self.instance is not None:
            parts.append(f"instance '{self.instance}'")
        if self.role is not None:
            parts.append(f"role '{self.role}'")
        return ", ".join(parts)


class MachineConfig(BaseModel):
    """One fragment or one machine's whole configuration; builder methods return self."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    files: dict[str, FileSpec] = Field(default_factory=dict)
    packages: list[str] = Field(default_factory=list)
    users: dict[str, UserSpec] = Field(default_factory=dict)
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    units: dict[str, UnitSpec] = Field(default_factory=dict)
    hooks: dict[str, HookSpec] = Field(default_factory=dict)
    secrets: dict[str, SecretFileSpec] = Field(default_factory=dict)
    states: dict[str, StateSpec] = Field(default_factory=dict)  # Clan's clan.core.state
    checks: dict[str, CheckSpec] = Field(default_factory=dict)
    reloads: dict[str, ReloadSpec] = Field(default_factory=dict)

    def __init__(self, /, **data: Any) -> None:
        """`MachineConfig()` (what services start from) is built without a validation pass:
        a fragment is made per machine and instance, so this is on the evaluation's hot path."""
        if data:
            super().__init__(**data)
            return
        _set_dict(self, {name: factory() for name, factory in _EMPTY_FIELDS})
        _set_fields_set(self, set())
        _set_extra(self, None)
        _set_private(self, None)

    # -- builders (what service authors call) ---------------------------------------------
    def file(
        self, path: str, content: str, *, mode: str = "0644", owner: str = "root", group: str = "root"
    ) -> MachineConfig:
        if not (type(path) is str and type(content) is str and type(owner) is str and type(group) is str):
            for what, value in (("path", path), ("content", content), ("owner", owner), ("group", group)):
                _text(f"file {what}", value)
        if not path.startswith("/"):
            raise ValueError(f"file path must be absolute, not {path!r}")
        if type(mode) is not str or (mode not in _CHECKED_MODES and not _MODE.match(mode)):
            raise ValueError(f"file mode must be octal like '0644', not {mode!r}")
        self.files[path] = construct(
            FileSpec, {"path": path, "content": content, "mode": mode, "owner": owner, "group": group}
        )
        return self

    def package(self, *names: str) -> MachineConfig:
        for name in names:
            if name not in self.packages:
                self.packages.append(name)
        return self

    def user(self, name: str, **fields: Any) -> MachineConfig:
        for key in ("groups", "authorized_keys"):
            if key in fields:
                fields[key] = tuple(fields[key])
        self.users[name] = UserSpec(name=name, **fields)
        return self

    def group(self, name: str, **fields: Any) -> MachineConfig:
        if "members" in fields:
            fields["members"] = tuple(fields["members"])
        self.groups[name] = GroupSpec(name=name, **fields)
        return self

    def unit(
        self,
        name: str,
        content: str,
        *,
        enabled: bool = True,
        start: bool = True,
        restart_on: list[str] | tuple[str, ...] = (),
    ) -> MachineConfig:
        self.units[name] = UnitSpec(
            name=name, content=content, enabled=enabled, start=start, restart_on=tuple(restart_on)
        )
        return self

    def hook(self, name: str, script: str, *, after: list[str] | tuple[str, ...] = ()) -> MachineConfig:
        self.hooks[name] = HookSpec(name=name, script=script, after=tuple(after))
        return self

    def state(
        self,
        name: str,
        folders: list[str] | tuple[str, ...],
        *,
        pre_backup: str | None = None,
        post_backup: str | None = None,
        pre_restore: str | None = None,
        post_restore: str | None = None,
        stop_on_restore: list[str] | tuple[str, ...] = (),
    ) -> MachineConfig:
        """Declare state for backup providers; its folders and hooks also land under STATE_DIR on the host."""
        for folder in folders:
            if not folder.startswith("/") or folder.rstrip("/") == "" or "\n" in folder or ":" in folder:
                raise ValueError(f"state folder must be an absolute path (not /, no ':' or newline), not {folder!r}")
        spec = StateSpec(
            name=name, folders=tuple(f.rstrip("/") for f in folders), pre_backup_script=pre_backup,
            post_backup_script=post_backup, pre_restore_script=pre_restore, post_restore_script=post_restore,
            stop_on_restore=tuple(stop_on_restore),
        )  # fmt: skip
        self.states[name] = spec
        self.file(f"{STATE_DIR}/{name}/folders", "".join(f"{f}\n" for f in spec.folders))
        for hook, script in spec.scripts().items():
            self.file(f"{STATE_DIR}/{name}/{hook}", f"#!/bin/sh\nset -eu\n{script}\n", mode="0755")
        return self

    def backup_provider(self, name: str, *, create: str, list: str, restore: str) -> MachineConfig:
        """Clan's `clan.core.backups.providers.<name>`: sh scripts the `backups` verbs run on the host.

        `list` prints one backup name a line; `restore` gets NAME and FOLDERS (`:`-separated) in its env.
        """
        for verb, script in (("create", create), ("list", list), ("restore", restore)):
            self.file(f"{BACKUP_PROVIDERS_DIR}/{name}/{verb}", f"#!/bin/sh\nset -eu\n{script}", mode="0755")
        return self

    def check(
        self,
        name: str,
        *,
        unit: str | None = None,
        tcp: int | None = None,
        udp: int | None = None,
        http: str | None = None,
        command: str | None = None,
        timeout: int = 10,
    ) -> MachineConfig:
        """Declare a health check: a unit is active, a TCP/UDP port listens, a URL answers 2xx
        (needs curl or wget on the host) or an sh command exits 0 — within `timeout` seconds."""
        given = {k: v for k, v in {"unit": unit, "tcp": tcp, "udp": udp, "http": http, "command": command}.items()
                 if v is not None}  # fmt: skip
        if len(given) != 1:
            raise ValueError(f"check {name!r} must test exactly one thing: unit=, tcp=, udp=, http= or command=")
        ((kind, target),) = given.items()
        self.checks[name] = CheckSpec(name=name, kind=kind, target=str(target), timeout=timeout)  # type: ignore[arg-type]
        return self

    def reload_unit(self, unit: str, *, on: list[str] | tuple[str, ...], restart: bool = False) -> MachineConfig:
        """Reload (or restart) `unit`, which pyclan does not own, whenever a path of `on` changes."""
        self.reloads[unit] = ReloadSpec(unit=unit, on=tuple(on), restart=restart)
        return self

    def is_empty(self) -> bool:
        return not (
            self.files or self.packages or self.users or self.groups or self.units or self.hooks or self.secrets
            or self.states or self.checks or self.reloads
        )


_ACCOUNT_HINT = (
    f"use lowercase letters, digits, '_' and '-' (starting with a letter or '_'), at most {ACCOUNT_NAME_MAX} characters"
)


def invalid_name(kind: str, name: str) -> tuple[str, str] | None:
    """(message, hint) if `name` is not valid for `kind` (users, groups, units, packages, hooks), else None."""
    if kind in ("users", "groups"):
        if ACCOUNT_NAME_RE.match(name) and len(name) <= ACCOUNT_NAME_MAX:
            return None
        return f"invalid {kind[:-1]} name {name!r}", _ACCOUNT_HINT
    if kind == "units":
        if UNIT_NAME_RE.match(name):
            return None
        return (
            f"invalid systemd unit name {name!r}",
            "a unit name ends in .service, .socket, .timer, .target, .path, .mount, … "
            "and uses letters, digits and : _ . \\ @ -",
        )
    if kind == "packages":
        if PACKAGE_NAME_RE.match(name):
            return None
        return f"invalid Debian package name {name!r}", "package names use lowercase letters, digits, '+', '-' and '.'"
    if kind == "hooks":
        if HOOK_NAME_RE.match(name):
            return None
        return f"invalid hook name {name!r}", "use letters, digits and _ . @ : -"
    return None


#: every MachineConfig field with its empty value's factory (what `MachineConfig()` starts from)
_EMPTY_FIELDS: tuple[tuple[str, Any], ...] = tuple(
    (name, info.default_factory) for name, info in MachineConfig.model_fields.items()
)
