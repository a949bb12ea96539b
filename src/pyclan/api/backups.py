"""API of backups (Clan's `clan backups`): list, create and restore a machine's state."""

from __future__ import annotations

from collections.abc import Callable

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.api.deploy import HostKeyMode
from pyclan.deploy.backups import BackupList, CreatedBackups, HostOptions, RestoredBackup

Progress = Callable[[str], None]


def _host(target_host: str | None, host_key_check: HostKeyMode) -> HostOptions:
    from pyclan.deploy.transport import HostKeyCheck

    return HostOptions(target_host, HostKeyCheck(host_key_check))


def _quiet(line: str) -> None:
    """Report nothing."""


@register
def list_backups(
    machine: str,
    provider: str | None = None,
    target_host: str | None = None,
    host_key_check: HostKeyMode = "strict",
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> BackupList:
    """Backups of the machine, per provider (`pyclan backups list`)."""
    from pyclan.deploy import backups

    clan = open_flake(flake, input_overrides)
    return backups.list_backups(clan, machine, provider, _host(target_host, host_key_check))


@register
def create_backup(
    machine: str,
    provider: str | None = None,
    target_host: str | None = None,
    host_key_check: HostKeyMode = "strict",
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> CreatedBackups:
    """Back up every state folder of the machine with each provider, or one (`pyclan backups create`)."""
    from pyclan.deploy import backups

    clan = open_flake(flake, input_overrides)
    return backups.create_backups(clan, machine, provider, _host(target_host, host_key_check), progress or _quiet)


@register
def restore_backup(
    machine: str,
    provider: str,
    name: str,
    service: str | None = None,
    target_host: str | None = None,
    host_key_check: HostKeyMode = "strict",
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> RestoredBackup:
    """Restore a backup: every state of the machine, or one service's (`pyclan backups restore`)."""
    from pyclan.deploy import backups

    clan = open_flake(flake, input_overrides)
    opts = _host(target_host, host_key_check)
    return backups.restore_backup(clan, machine, provider, name, service, opts, progress or _quiet)
