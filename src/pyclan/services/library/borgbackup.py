"""borgbackup: clients back up to borg servers over SSH (Clan's `borgbackup`), for Debian with systemd.

Every client has the generator `borgbackup` (Clan's names): an ed25519 SSH key (`borgbackup.ssh`, secret;
`borgbackup.ssh.pub`, public) and the repository passphrase (`borgbackup.repokey`, secret). A server
creates the user `borg` and, per client, the repository directory `<directory>/<client>` and an
authorized key that only runs `borg serve --restrict-to-path <directory>/<client>`. A client gets, per
destination (every server of the instance, plus `destinations` of its own), a script, a oneshot
service `borgbackup-job-<name>.service` and a timer (`startAt`) that run `borg init --encryption=repokey`
the first time, then `borg create` of `directories` and `borg prune`.

Host keys: when a server runs pyclan's `sshd` service (it has the `openssh` generator), its host key is
pinned in `/etc/borgbackup/known_hosts` and ssh runs with `StrictHostKeyChecking=yes`. Otherwise ssh
trusts the key it sees first (`accept-new`) and remembers it in root's known_hosts.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pyclan.config.machine_config import STATE_DIR, MachineConfig
from pyclan.errors import ClanError
from pyclan.services import Generator, GeneratorInput, InstanceContext, Service, VarFile
from pyclan.services.library._common import SshKeygenRun, random_password, sh_quote, state_hooks, systemd_unit
from pyclan.services.library.internet import machine_target

SERVICE_NAME = "borgbackup"
GENERATOR = "borgbackup"  # Clan's name: one key and passphrase per client machine
SSHD_GENERATOR = "openssh"  # pyclan's sshd service: host key `ssh.id_ed25519.pub`
BORG_USER = "borg"
DEFAULT_DIRECTORY = "/var/lib/borgbackup"
JOBS_DIR = "/etc/borgbackup"
KNOWN_HOSTS = f"{JOBS_DIR}/known_hosts"
COMPRESSION = "auto,zstd"
PRUNE_KEEP = ("--keep-within", "1d", "--keep-daily", "7", "--keep-weekly", "4")  # Clan's policy

JobName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9._-]+$")]

service = Service(
    SERVICE_NAME,
    description="Efficient, deduplicating backup program with optional compression and secure encryption.",
    readme=(
        "Clients back up `directories` on a timer to every server of the instance (and to extra "
        "destinations), over SSH with a per-client key restricted to the client's repository."
    ),
    categories=["System"],
)


# -- settings ------------------------------------------------------------------------------------------


class ServerSettings(BaseModel):
    """Settings of the `server` role."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        default=None,
        description=("Address clients connect to; if null: the machine's `internet` host, else the machine's name"),
    )
    directory: str = Field(
        default=DEFAULT_DIRECTORY,
        description="The directory where the borgbackup repositories are stored (one per client)",
    )

    @field_validator("directory")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or value.rstrip("/") == "" or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} must be an absolute path without spaces (not /)")
        return value.rstrip("/")


class Destination(BaseModel):
    """An extra destination (a repository not served by a server of this instance)."""

    model_config = ConfigDict(extra="forbid")

    name: JobName | None = Field(default=None, description="The name of the backup job; default: the key")
    repo: str = Field(
        description="The borgbackup repository to back up to", examples=["u1@u1.your-storagebox.de:./borg"]
    )
    rsh: str | None = Field(
        default=None,
        description="The ssh command borg uses; default: ssh with the client key and StrictHostKeyChecking=accept-new",
    )


class ClientSettings(BaseModel):
    """Settings of the `client` role."""

    model_config = ConfigDict(extra="forbid")

    startAt: str = Field(  # Clan's spelling
        default="*-*-* 01:00:00", description="When to back up: a systemd calendar event (OnCalendar=)"
    )
    directories: list[str] = Field(  # pyclan: Clan backs up the folders its services declare as state
        default=[],
        description="Absolute paths to back up; with none, the job only initialises the repository",
        examples=[["/etc", "/home", "/var/lib/important"]],
    )
    exclude: list[str] = Field(
        default=[], description="Directories/Files to exclude from the backup (borg patterns, * wildcards)"
    )
    destinations: dict[str, Destination] = Field(
        default={}, description="External destinations where the machine should be backed up to"
    )

    @field_validator("directories")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/") or "\n" in path:
                raise ValueError(f"{path!r} is not an absolute path")
        return value

    @field_validator("startAt")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip() or "\n" in value:
            raise ValueError("startAt must be one line, a systemd calendar event such as '*-*-* 01:00:00'")
        return value


# -- generator -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientKeyRun:
    """Generator run: the client's SSH key pair (`ssh-keygen`, as Clan) and repository passphrase."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        keys = SshKeygenRun(GENERATOR, "borgbackup.ssh")(inp)
        return {**keys, "borgbackup.repokey": random_password(6, 5)}


CLIENT_GENERATOR = Generator(
    name=GENERATOR,
    files={
        "borgbackup.ssh": VarFile(secret=True),
        "borgbackup.ssh.pub": VarFile(secret=False),
        "borgbackup.repokey": VarFile(secret=True),
    },
    run=ClientKeyRun(),
)


# -- server ----------------------------------------------------------------------------------------------


def authorized_key(directory: str, client: str, public_key: str) -> str:
    """The `borg` user's line for one client: borg serve, restricted to the client's repository."""
    key = " ".join(public_key.split()[:2])
    return f'command="borg serve --restrict-to-path {directory}/{client}",restrict {key} borgbackup@{client}'


@service.role("server", interface=ServerSettings, description="A borgbackup server that stores the backups of clients.")
def server(ctx: InstanceContext[ServerSettings]) -> MachineConfig:
    directory = ctx.settings.directory
    clients = sorted(ctx.roles["client"].machines) if "client" in ctx.roles else []
    keys = [authorized_key(directory, c, ctx.vars.public(GENERATOR, "borgbackup.ssh.pub", machine=c)) for c in clients]
    dirs = " ".join(sh_quote(f"{directory}/{c}") for c in clients)
    script = f"""set -eu
install -d -o {BORG_USER} -g {BORG_USER} -m 0750 {sh_quote(directory)}
for d in {dirs}; do
    install -d -o {BORG_USER} -g {BORG_USER} -m 0700 "$d"
done
"""
    return (
        MachineConfig()
        .package("borgbackup", "openssh-server")
        .group(BORG_USER, system=True)
        .user(
            BORG_USER,
            system=True,
            group=BORG_USER,
            home=DEFAULT_DIRECTORY,
            create_home=True,
            shell="/bin/sh",
            description="borgbackup repositories",
            authorized_keys=keys,
        )
        .hook(f"borgbackup-repos-{ctx.instance_name}", script)
        .check("borgbackup-sshd-running", unit="ssh.service", timeout=15)
        .check(f"borgbackup-{ctx.instance_name}-repos", command=repos_check(directory, clients), timeout=10)
    )


def repos_check(directory: str, clients: list[str]) -> str:
    """sh: every client's repository folder exists, belongs to the borg user and lets it write."""
    folders = " ".join(sh_quote(f"{directory}/{c}") for c in clients) or sh_quote(directory)
    return (
        f"for d in {folders}; do "
        f'[ -d "$d" ] && [ "$(stat -c %U "$d")" = {BORG_USER} ] && runuser -u {BORG_USER} -- test -w "$d" '
        f'|| {{ echo "$d is not a repository folder that {BORG_USER} can write"; exit 1; }}; done'
    )


# -- client ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    name: str
    repo: str
    rsh: str


def _server_job(ctx: InstanceContext[ClientSettings], server_name: str, key_file: str) -> Job:
    settings: ServerSettings = ctx.roles["server"].machines[server_name].settings
    target = machine_target(ctx.exports, server_name)
    host = settings.address or (target.host if target else server_name)
    port = target.port if target is not None and settings.address is None else 22
    host_in_url = f"[{host}]" if ":" in host else host
    repo = f"ssh://{BORG_USER}@{host_in_url}{'' if port == 22 else f':{port}'}{settings.directory}/{ctx.machine.name}"
    options = ["-i", key_file, "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no"]
    if _host_key(ctx, server_name) is not None:
        options += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={KNOWN_HOSTS}"]
    else:
        options += ["-o", "StrictHostKeyChecking=accept-new"]
    return Job(server_name, repo, shlex.join(["ssh", *options]))


def _host_key(ctx: InstanceContext[Any], server_name: str) -> str | None:
    """The server's pinned host key (pyclan's sshd service), or None when it has none (yet)."""
    try:
        if not ctx.vars.has(SSHD_GENERATOR, "ssh.id_ed25519.pub", machine=server_name):
            return None
    except ClanError:  # the server does not run pyclan's sshd service
        return None
    key = ctx.vars.public(SSHD_GENERATOR, "ssh.id_ed25519.pub", machine=server_name).split()
    return " ".join(key[:2]) if len(key) >= 2 else None


def _known_host(job: Job, key: str) -> str:
    """A known_hosts line for the host (and port) in the job's repository URL."""
    match = re.match(r"^ssh://[^@]+@(\[[^\]]+\]|[^:/]+)(?::(\d+))?/", job.repo)
    assert match is not None
    host = match.group(1).strip("[]")
    port = match.group(2)
    return f"[{host}]:{port} {key}" if port else f"{host} {key}"


def job_script(settings: ClientSettings) -> str:
    """POSIX sh run by the job's service; BORG_REPO, BORG_RSH and BORG_PASSCOMMAND come from the unit.

    It backs up `directories` and every state folder of the machine (read from the host's state
    declarations when it runs, so a service added later is covered without touching this script).
    """
    create = ["borg", "create", "--stats", "--compression", COMPRESSION]
    for pattern in settings.exclude:
        create += ["--exclude", pattern]
    create.append("::{hostname}-{now:%Y-%m-%dT%H:%M:%S}")
    prune = ["borg", "prune", "--list", "--glob-archives", "{hostname}-*", *PRUNE_KEEP]
    directories = "".join(f"{sh_quote(d)}\n" for d in settings.directories)
    return f"""#!/bin/sh
# Managed by pyclan (service borgbackup).
set -eu
if ! borg info >/dev/null 2>&1; then
    echo "borgbackup: initialising $BORG_REPO"
    borg init --encryption=repokey
fi
list=$(mktemp)
trap 'rm -f "$list"' EXIT
{{ printf '%s' {sh_quote(directories)}; cat {STATE_DIR}/*/folders 2>/dev/null || true; }} | sort -u > "$list"
set --
while IFS= read -r folder; do
    if [ -z "$folder" ]; then continue; fi
    if [ -e "$folder" ]; then set -- "$@" "$folder"; continue; fi
    echo "borgbackup: $folder does not exist, not backed up" >&2
done < "$list"
if [ "$#" -eq 0 ]; then
    echo 'borgbackup: no directories to back up (set `directories`, or run a service that declares state)'
    exit 0
fi
{state_hooks("borgbackup", "pre-backup")}{shlex.join(create)} "$@"
{shlex.join(prune)}
{state_hooks("borgbackup", "post-backup")}"""


def borg_wrapper(job: Job, passphrase_file: str) -> str:
    """`borg-job-<name> ARGS…`: borg with the job's repository, ssh command and passphrase (Clan's `borg-job-*`)."""
    env = "".join(f"export {k}={sh_quote(v)}\n" for k, v in _job_env(job, passphrase_file))
    return f"#!/bin/sh\n# Managed by pyclan (service borgbackup).\n{env}exec borg \"$@\"\n"


def _job_env(job: Job, passphrase_file: str) -> list[tuple[str, str]]:
    return [
        ("BORG_REPO", job.repo),
        ("BORG_RSH", job.rsh),
        ("BORG_PASSCOMMAND", f"cat {passphrase_file}"),
        ("BORG_RELOCATED_REPO_ACCESS_IS_OK", "yes"),
        ("HOME", "/root"),
    ]


# The backup provider (Clan's `clan.core.backups.providers.borgbackup`): the same on every client, whatever its
# instances, so it finds the jobs on the host. Names are `<job>::<archive>` (Clan's also name the repository).
PROVIDER_CREATE = """failed=""
for unit in /etc/systemd/system/borgbackup-job-*.service; do
    [ -e "$unit" ] || continue
    name=$(basename "$unit")
    echo "borgbackup: running $name"
    if ! systemctl start "$name"; then
        journalctl -u "$name" -n 40 --no-pager -o cat >&2 || true
        failed="$failed $name"
    fi
done
if [ -n "$failed" ]; then
    echo "borgbackup: failed:$failed" >&2
    exit 1
fi
"""

PROVIDER_LIST = f"""for wrapper in {JOBS_DIR}/borg-job-*; do
    [ -x "$wrapper" ] || continue
    job=${{wrapper#{JOBS_DIR}/borg-job-}}
    "$wrapper" list --short | sed "s|^|$job::|"
done
"""

PROVIDER_RESTORE = f""": "${{NAME:?no backup name given (NAME)}}" "${{FOLDERS:?no folders given (FOLDERS)}}"
job=${{NAME%%::*}}
archive=${{NAME#*::}}
case "$job" in
    ""|*[!a-zA-Z0-9._-]*) echo "borgbackup: invalid job name in $NAME" >&2; exit 1 ;;
esac
wrapper={JOBS_DIR}/borg-job-$job
[ -x "$wrapper" ] || {{ echo "borgbackup: no job named $job: the backup name is invalid" >&2; exit 1; }}
staging=$(mktemp -d /var/tmp/pyclan-borg-restore.XXXXXX)
trap 'rm -rf "$staging"' EXIT
set -f
IFS=:
set --
for folder in $FOLDERS; do set -- "$@" "${{folder#/}}"; done
unset IFS
cd "$staging"
"$wrapper" extract -- "::$archive" "$@"
for path in "$@"; do
    echo "borgbackup: restoring /$path"
    mkdir -p "/$path"
    rsync -a --delete --checksum "$staging/$path/" "/$path/"
done
"""


def _job_units(job: Job, script_path: str, passphrase_file: str, start_at: str) -> tuple[str, str]:
    env = [f"{k}={v}" for k, v in _job_env(job, passphrase_file)]
    svc = systemd_unit(
        {
            "Unit": {
                "Description": f"BorgBackup job {job.name} (pyclan)",
                "Wants": "network-online.target",
                "After": "network-online.target",
            },
            "Service": {
                "Type": "oneshot",
                "Environment": [_unit_quote(e) for e in env],
                "ExecStart": f"/bin/sh {script_path}",
                "Nice": 19,
                "IOSchedulingClass": "idle",
            },
        }
    )
    timer = systemd_unit(
        {
            "Unit": {"Description": f"BorgBackup job {job.name} timer (pyclan)"},
            "Timer": {"OnCalendar": start_at, "Persistent": True},
            "Install": {"WantedBy": "timers.target"},
        }
    )
    return svc, timer


def _unit_quote(assignment: str) -> str:
    """One `Environment=` word: double-quoted, as systemd unquotes it."""
    return '"' + assignment.replace("\\", "\\\\").replace('"', '\\"') + '"'


@service.role(
    "client", interface=ClientSettings, description="A borgbackup client that backs up to all borgbackup server roles."
)
def client(ctx: InstanceContext[ClientSettings]) -> MachineConfig:
    key_file = ctx.vars.secret_path(GENERATOR, "borgbackup.ssh")
    passphrase = ctx.vars.secret_path(GENERATOR, "borgbackup.repokey")
    servers = sorted(ctx.roles["server"].machines) if "server" in ctx.roles else []
    jobs: dict[str, Job] = {s: _server_job(ctx, s, key_file) for s in servers}
    default_rsh = shlex.join(
        ["ssh", "-i", key_file, "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
         "-o", "StrictHostKeyChecking=accept-new"]
    )  # fmt: skip
    for key, dest in ctx.settings.destinations.items():
        name = dest.name or key
        if not re.match(r"^[a-zA-Z0-9._-]+$", name):
            raise ClanError.single(
                "settings-type",
                f"instances.{ctx.instance_name}.roles.client.machines.{ctx.machine.name}.settings.destinations.{key}",
                f"destination name {name!r} may only contain letters, digits and ._-",
                hint="set `name` to a simple job name",
            )
        jobs[name] = Job(name, dest.repo, dest.rsh or default_rsh)  # Clan: external destinations win

    cfg = (
        MachineConfig()
        .package("borgbackup", "openssh-client", "rsync")
        .backup_provider(SERVICE_NAME, create=PROVIDER_CREATE, list=PROVIDER_LIST, restore=PROVIDER_RESTORE)
    )
    known = [_known_host(jobs[s], k) for s in servers if s in jobs and (k := _host_key(ctx, s)) is not None]
    if known:
        cfg.file(KNOWN_HOSTS, "\n".join(known) + "\n")
    script = f"{JOBS_DIR}/job-{ctx.instance_name}.sh"
    cfg.file(script, job_script(ctx.settings), mode="0755")
    for name, job in sorted(jobs.items()):
        svc, timer = _job_units(job, script, passphrase, ctx.settings.startAt)
        cfg.unit(f"borgbackup-job-{name}.service", svc, enabled=False, start=False)
        cfg.unit(f"borgbackup-job-{name}.timer", timer)
        cfg.check(f"borgbackup-job-{name}-timer", unit=f"borgbackup-job-{name}.timer", timeout=10)
        cfg.file(f"{JOBS_DIR}/borg-job-{name}", borg_wrapper(job, passphrase), mode="0700")
    return cfg


@client.generators
def client_generators(ctx: InstanceContext[ClientSettings]) -> list[Generator]:
    return [CLIENT_GENERATOR]
