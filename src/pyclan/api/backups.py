"""API of backups (Clan's `clan backups`): list, create and restore a machine's state."""

from __future__ import annotations

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.deploy.backups import BackupList, CreatedBackups, RestoredBackup


@register
def list_backups(
    machine: str, provider: str | None = None, target_host: str | None = None, flake: str | None = None
) -> BackupList:
    """Backups of the machine, per provider (`pyclan backups list`)."""
    from pyclan.deploy import backups

    return backups.list_backups(open_flake(flake), machine, provider, backups.HostOptions(target_host))


@register
def create_backup(
    machine: str, provider: str | None = None, target_host: str | None = None, flake: str | None = None
) -> CreatedBackups:
    """Back up every state folder of the machine with each provider, or one (`pyclan backups create`)."""
    from pyclan.deploy import backups

    return backups.create_backups(open_flake(flake), machine, provider, backups.HostOptions(target_host))


@register
def restore_backup(
    machine: str,
    provider: str,
    name: str,
    service: str | None = None,
    target_host: str | None = None,
    flake: str | None = None,
) -> RestoredBackup:
    """Restore a backup: every state of the machine, or one service's (`pyclan backups restore`)."""
    from pyclan.deploy import backups

    return backups.restore_backup(
        open_flake(flake), machine, provider, name, service, backups.HostOptions(target_host)
    )
