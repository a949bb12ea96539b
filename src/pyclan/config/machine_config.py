"""MachineConfig: pyclan's answer to a NixOS module.

A declarative description of one host: files, packages, users and groups, systemd units and
named activation hooks. Services return fragments; `merge.py` combines the fragments of all
services into one config per machine. Everything here is plain data (pydantic, JSON-able) so a
generation can be built and diffed from it, and deploy can remove what is no longer declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_MODE_PATTERN = r"^[0-7]{3,4}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    model_config = ConfigDict(extra="forbid")

    files: dict[str, FileSpec] = Field(default_factory=dict)
    packages: list[str] = Field(default_factory=list)
    users: dict[str, UserSpec] = Field(default_factory=dict)
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    units: dict[str, UnitSpec] = Field(default_factory=dict)
    hooks: dict[str, HookSpec] = Field(default_factory=dict)
    secrets: dict[str, SecretFileSpec] = Field(default_factory=dict)
    checks: dict[str, CheckSpec] = Field(default_factory=dict)
    reloads: dict[str, ReloadSpec] = Field(default_factory=dict)

    # -- builders (what service authors call) ---------------------------------------------
    def file(
        self, path: str, content: str, *, mode: str = "0644", owner: str = "root", group: str = "root"
    ) -> MachineConfig:
        if not path.startswith("/"):
            raise ValueError(f"file path must be absolute, not {path!r}")
        self.files[path] = FileSpec(path=path, content=content, mode=mode, owner=owner, group=group)
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
            or self.checks or self.reloads
        )
