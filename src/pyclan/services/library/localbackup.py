"""localbackup: rsnapshot snapshots of the machine's state to local directories or drives (Clan's `localbackup`).

Every state folder of the machine (what services declare with `MachineConfig.state`, found on the host under
`/etc/pyclan/state/`) is snapshotted into each target with `rsnapshot sync` + `rsnapshot snapshot`, keeping
`snapshots` snapshots (`<directory>/snapshot.0` is the newest). A target with a `mountpoint` is mounted first
(`mount -o X-mount.mkdir`, so it needs an /etc/fstab entry) and unmounted afterwards; the mount and backup
hooks run around that, as in Clan. The machine gets the backup provider `localbackup` (commands under
`/etc/pyclan/backups/localbackup/`), which `pyclan backups create/list/restore` run; backup names are
`<target>::<snapshot directory>`. Folders are stored under `<snapshot>/<machine><folder>`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pyclan.config.machine_config import STATE_DIR, MachineConfig
from pyclan.services import InstanceContext, Service
from pyclan.services.library._common import sh_quote, state_hooks

SERVICE_NAME = "localbackup"

TargetName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9._-]+$")]

service = Service(
    SERVICE_NAME,
    description="Automatically backups current machine to local directory or a mounted drive.",
    readme=(
        "Snapshots every state folder of the machine with rsnapshot into each target directory (optionally "
        "mounting it first); `pyclan backups` lists, creates and restores them."
    ),
    categories=["System"],
)


def _absolute(value: str, what: str) -> str:
    if not value.startswith("/") or value.rstrip("/") == "" or "\n" in value or "\t" in value:
        raise ValueError(f"{what} {value!r} must be an absolute path (not /, no tabs or newlines)")
    return value.rstrip("/")


class Target(BaseModel):
    """One place snapshots are stored."""

    model_config = ConfigDict(extra="forbid")

    name: TargetName | None = Field(default=None, description="the name of the backup job; default: the key")
    directory: str = Field(description="the directory to backup", examples=["/mnt/backup"])
    mountpoint: str | None = Field(
        default=None,
        description=(
            "mountpoint of the directory to backup. If set, the directory will be mounted before the backup "
            "and unmounted afterwards"
        ),
    )
    preMountHook: str | None = Field(default=None, description="Shell commands to run before the directory is mounted")
    postMountHook: str | None = Field(default=None, description="Shell commands to run after the directory is mounted")
    preUnmountHook: str | None = Field(
        default=None, description="Shell commands to run before the directory is unmounted"
    )
    postUnmountHook: str | None = Field(
        default=None, description="Shell commands to run after the directory is unmounted"
    )
    preBackupHook: str | None = Field(default=None, description="Shell commands to run before the backup")
    postBackupHook: str | None = Field(default=None, description="Shell commands to run after the backup")

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str) -> str:
        return _absolute(value, "directory")

    @field_validator("mountpoint")
    @classmethod
    def _mountpoint(cls, value: str | None) -> str | None:
        return None if value is None else _absolute(value, "mountpoint")


class Settings(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    targets: dict[str, Target] = Field(description="List of directories where backups are stored")
    snapshots: int = Field(default=20, ge=1, description="Number of snapshots to keep")


# -- host scripts (POSIX sh; inventory strings only ever appear quoted) -----------------------------------


def _mounting(target: Target) -> str:
    """Mount the target (with its hooks) and arrange the unmount (with its hooks) for when the subshell exits."""
    mount = [target.preMountHook or ""]
    unmount = [target.preUnmountHook or ""]
    if target.mountpoint is not None:
        point = sh_quote(target.mountpoint)
        mount.append(f"mountpoint -q {point} || mount -o X-mount.mkdir {point}")
        unmount.append(f"umount {point}")
    mount.append(target.postMountHook or "")
    unmount.append(target.postUnmountHook or "")
    body = "\n".join(line for line in unmount if line)
    trap = f"trap {sh_quote(body)} EXIT\n" if body else ""
    return "\n".join(line for line in mount if line) + "\n" + trap


def rsnapshot_config(directory: str, snapshots: int) -> str:
    """The fixed part of the rsnapshot config (tab-separated); `backup` lines are appended at run time."""
    lines = [
        ("config_version", "1.2"),
        ("snapshot_root", f"{directory}/"),
        ("sync_first", "1"),
        ("cmd_cp", "/bin/cp"),
        ("cmd_rm", "/bin/rm"),
        ("cmd_rsync", "/usr/bin/rsync"),
        ("link_dest", "1"),
        ("retain", f"snapshot\t{snapshots}"),
    ]
    return "".join(f"{key}\t{value}\n" for key, value in lines)


def create_script(settings: Settings, machine: str) -> str:
    parts = ['conf=$(mktemp)\ntrap \'rm -f "$conf"\' EXIT\n']
    for key, target in sorted(settings.targets.items()):
        name = target.name or key
        config = rsnapshot_config(target.directory, settings.snapshots)
        parts.append(f"""(
{_mounting(target)}echo "localbackup: creating backup in target {name}"
{f"( {target.preBackupHook}{chr(10)})" if target.preBackupHook else ""}
{state_hooks("localbackup", "pre-backup")}printf '%s' {sh_quote(config)} > "$conf"
for folders in {STATE_DIR}/*/folders; do
    [ -f "$folders" ] && cat "$folders"
done | sort -u | while IFS= read -r folder; do
    if [ -d "$folder" ]; then
        printf 'backup\\t%s/\\t%s/\\n' "$folder" {sh_quote(machine)} >> "$conf"
    else
        echo "localbackup: $folder does not exist, not backed up" >&2
    fi
done
if grep -q '^backup' "$conf"; then
    rsnapshot -c "$conf" sync
    rsnapshot -c "$conf" snapshot
else
    echo "localbackup: no state folders to back up"
fi
{state_hooks("localbackup", "post-backup")}{f"( {target.postBackupHook}{chr(10)})" if target.postBackupHook else ""}
)
""")
    return "".join(parts)


def list_script(settings: Settings) -> str:
    """One backup name a line: `<target>::<snapshot directory>`, newest first."""
    parts = []
    for key, target in sorted(settings.targets.items()):
        name = target.name or key
        parts.append(f"""(
{_mounting(target)}if [ -d {sh_quote(target.directory)} ]; then
    find {sh_quote(target.directory)} -mindepth 1 -maxdepth 1 -type d -name 'snapshot.*' | sort -t. -k2 -n \\
        | sed 's/^/{name}::/'
fi
)
""")
    return "".join(parts)


def restore_script(settings: Settings, machine: str) -> str:
    """Restore FOLDERS (`:`-separated) from backup NAME; each folder ends up exactly as it was backed up."""
    cases = "".join(
        f"    {target.name or key}) directory={sh_quote(target.directory)} ;;\n"
        for key, target in sorted(settings.targets.items())
    )
    mounts = "".join(
        f"    {target.name or key})\n{_mounting(target)}    ;;\n" for key, target in sorted(settings.targets.items())
    )
    return f""": "${{NAME:?no backup name given (NAME)}}" "${{FOLDERS:?no folders given (FOLDERS)}}"
target=${{NAME%%::*}}
snapshot=${{NAME#*::}}
case "$target" in
{cases}    *) echo "localbackup: no target named $target" >&2; exit 1 ;;
esac
case "$snapshot" in
    "$directory"/snapshot.*) number=${{snapshot#"$directory"/snapshot.}} ;;
    *) number="" ;;
esac
case "$number" in
    ""|*[!0-9]*) echo "localbackup: $snapshot is not a snapshot of target $target" >&2; exit 1 ;;
esac
case "$target" in
{mounts}esac
[ -d "$snapshot" ] || {{ echo "localbackup: no backup found at $snapshot" >&2; exit 1; }}
set -f
IFS=:
for folder in $FOLDERS; do
    source="$snapshot/{machine}$folder/"
    if [ ! -d "$source" ]; then
        echo "localbackup: $folder is not in backup $NAME" >&2
        exit 1
    fi
    echo "localbackup: restoring $folder"
    mkdir -p "$folder"
    rsync -a --delete --checksum "$source" "$folder/"  # byte for byte, even where size and mtime agree
done
"""


@service.role("default", interface=Settings, description="Placeholder role to apply the localbackup service")
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    machine = ctx.machine.name
    return (
        MachineConfig()
        .package("rsnapshot", "rsync")
        .backup_provider(
            SERVICE_NAME,
            create=create_script(ctx.settings, machine),
            list=list_script(ctx.settings),
            restore=restore_script(ctx.settings, machine),
        )
    )
