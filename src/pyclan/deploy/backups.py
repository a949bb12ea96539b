"""`pyclan backups list / create / restore` (Clan's `clan backups`): the machine's providers, run on the host.

A backup provider is a service that gives the machine `create`, `list` and `restore` commands under
`/etc/pyclan/backups/<provider>/` (`MachineConfig.backup_provider`); what it backs up is the machine's
state (`MachineConfig.state`), which the evaluated config knows. Commands run over deploy's SSH
transport; inventory strings reach the host only as arguments or environment, never as shell text.
A restore stops the units the restored states name (those that were running), runs each state's
pre-restore command, the provider's restore with the state's folders, the post-restore command, and
starts the stopped units again, also when the restore failed. As in Clan, a state that fails does not
keep the others from being restored; all failures are reported together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyclan.config.machine_config import BACKUP_PROVIDERS_DIR, MachineConfig, StateSpec
from pyclan.errors import ClanError, Problem, did_you_mean, unknown_machine

if TYPE_CHECKING:  # the SSH transport (asyncssh) is imported only when a command runs
    from pyclan.clan import Clan
    from pyclan.deploy.connection import CommandResult, Connection, Connector
    from pyclan.deploy.transport import HostKeyCheck

Progress = Callable[[str], None]  # one line saying what happens now


def no_progress(_line: str) -> None:
    return None


@dataclass(frozen=True)
class Backup:
    provider: str
    name: str


@dataclass(frozen=True)
class BackupList:
    machine: str
    backups: list[Backup]


@dataclass(frozen=True)
class CreatedBackups:
    machine: str
    providers: list[str]
    folders: list[str]  # every state folder of the machine


@dataclass(frozen=True)
class RestoredBackup:
    machine: str
    provider: str
    name: str
    services: list[str]  # the states restored
    folders: list[str]
    restarted_units: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HostOptions:
    target_host: str | None = None
    host_key_check: HostKeyCheck | None = None  # None: strict
    connector: Connector | None = None  # None: SSH (pyclan.deploy.connection.ssh)


# -- what the evaluated config says -------------------------------------------------------------------


def providers(config: MachineConfig) -> list[str]:
    """The backup providers of the machine (services that placed a `create` command)."""
    prefix = f"{BACKUP_PROVIDERS_DIR}/"
    return sorted(
        path.removeprefix(prefix).split("/")[0]
        for path in config.files
        if path.startswith(prefix) and path.endswith("/create")
    )


def _config(clan: Clan, machine: str) -> MachineConfig:
    known = clan.loaded.inventory.machines
    if machine not in known:
        raise ClanError(unknown_machine(machine, known))
    return clan.evaluator.config(machine)


def _chosen_providers(config: MachineConfig, machine: str, provider: str | None) -> list[str]:
    available = providers(config)
    if not available:
        raise ClanError.single(
            "usage-error", f"machines.{machine}", f"machine '{machine}' has no backup provider",
            hint="make it a member of a `borgbackup` (role client) or `localbackup` instance, then update it",
        )
    if provider is None:
        return available
    if provider not in available:
        raise ClanError.single(
            "usage-error", "--provider" if provider else "PROVIDER",
            f"machine '{machine}' has no backup provider '{provider}'",
            hint=did_you_mean(provider, available) or f"its providers: {', '.join(available)}",
        )
    return [provider]


def _chosen_states(config: MachineConfig, machine: str, service: str | None) -> list[StateSpec]:
    if not config.states:
        raise ClanError.single(
            "usage-error", f"machines.{machine}", f"machine '{machine}' declares no state to restore",
            hint="services declare state with MachineConfig.state (e.g. the users service: home directories)",
        )
    if service is None:
        return [config.states[name] for name in sorted(config.states)]
    if service not in config.states:
        raise ClanError.single(
            "usage-error", "--service", f"machine '{machine}' has no state named '{service}'",
            hint=did_you_mean(service, config.states) or f"its states: {', '.join(sorted(config.states))}",
        )
    return [config.states[service]]


def _folders(states: Sequence[StateSpec]) -> list[str]:
    return list(dict.fromkeys(folder for state in states for folder in state.folders))


# -- on the host ---------------------------------------------------------------------------------------


def _failed(conn: Connection, what: str, result: CommandResult) -> ClanError:
    detail = (result.error_text or result.text.strip())[-2000:]
    return ClanError.single(
        "deploy-error", f"machines.{conn.target.machine}", f"{what} failed on {conn.target} (exit {result.exit_status})"
        + (f":\n{detail}" if detail else ""),
    )


async def _provider_command(conn: Connection, provider: str, verb: str, *env: str) -> CommandResult:
    """Run the provider's command; `env` are NAME=…, FOLDERS=… assignments passed as arguments."""
    command = f"{BACKUP_PROVIDERS_DIR}/{provider}/{verb}"
    script = (
        f'[ -x {command} ] || {{ echo "backup provider {provider} is not installed on this host" >&2; exit 3; }}\n'
        f'for assignment in "$@"; do export "$assignment"; done\nexec {command}\n'
    )
    result = await conn.run(script, *env)
    if result.exit_status == 3 and "is not installed" in result.error_text:
        raise ClanError.single(
            "deploy-error", f"machines.{conn.target.machine}",
            f"backup provider '{provider}' is not installed on {conn.target}",
            hint=f"deploy the machine first: pyclan machines update {conn.target.machine}",
        )
    return result


async def _session(clan: Clan, machine: str, opts: HostOptions) -> Connection:
    from pyclan.deploy.connection import ssh
    from pyclan.deploy.targets import resolve_target
    from pyclan.deploy.transport import CONNECT_TIMEOUT, HostKeyCheck

    target = resolve_target(clan, machine, opts.target_host)
    return await (opts.connector or ssh)(target, opts.host_key_check or HostKeyCheck.STRICT, CONNECT_TIMEOUT)


def _report(progress: Progress, provider: str, result: CommandResult) -> None:
    for line in (result.text + result.stderr.decode(errors="replace")).splitlines():
        if line.strip():
            progress(f"{provider}: {line}" if not line.startswith(f"{provider}:") else line)


def list_backups(
    clan: Clan, machine: str, provider: str | None = None, opts: HostOptions | None = None
) -> BackupList:
    """Every backup of the machine, per provider (newest first where the provider knows)."""
    chosen = _chosen_providers(_config(clan, machine), machine, provider)

    async def go() -> list[Backup]:
        found: list[Backup] = []
        async with await _session(clan, machine, opts or HostOptions()) as conn:
            for name in chosen:
                result = await _provider_command(conn, name, "list")
                if result.exit_status != 0:
                    raise _failed(conn, f"listing the backups of provider '{name}'", result)
                found += [Backup(name, line.strip()) for line in result.text.splitlines() if line.strip()]
        return found

    return BackupList(machine, asyncio.run(go()))


def create_backups(
    clan: Clan, machine: str, provider: str | None = None, opts: HostOptions | None = None,
    progress: Progress = no_progress,
) -> CreatedBackups:
    """A backup of every state folder of the machine with each provider (or only `provider`)."""
    config = _config(clan, machine)
    chosen = _chosen_providers(config, machine, provider)

    async def go() -> None:
        async with await _session(clan, machine, opts or HostOptions()) as conn:
            for name in chosen:
                progress(f"{name}: creating a backup on {machine}")
                result = await _provider_command(conn, name, "create")
                _report(progress, name, result)
                if result.exit_status != 0:
                    raise _failed(conn, f"creating a backup with provider '{name}'", result)

    asyncio.run(go())
    return CreatedBackups(machine, chosen, _folders([config.states[s] for s in sorted(config.states)]))


async def _state_hook(conn: Connection, state: StateSpec, hook: str, env: Sequence[str]) -> None:
    command = state.command(hook)
    if command is None:
        return
    result = await conn.run('for assignment in "$@"; do export "$assignment"; done\n' + f"exec {command}\n", *env)
    if result.exit_status != 0:
        raise _failed(conn, f"the {hook} command of state '{state.name}'", result)


async def _stop_units(conn: Connection, units: Sequence[str]) -> list[str]:
    """Stop those of `units` that are running; returns them (to start again)."""
    if not units:
        return []
    script = 'for unit in "$@"; do if systemctl is-active --quiet "$unit"; then echo "$unit"; fi; done'
    running = (await conn.run(script, *units)).text.split()
    if running:
        result = await conn.run('systemctl stop -- "$@"', *running)
        if result.exit_status != 0:
            raise _failed(conn, "stopping " + ", ".join(running), result)
    return running


async def _restore_state(conn: Connection, provider: str, name: str, state: StateSpec, progress: Progress) -> None:
    env = [f"NAME={name}", f"FOLDERS={':'.join(state.folders)}"]
    progress(f"{provider}: restoring {state.name} ({', '.join(state.folders)}) from {name}")
    await _state_hook(conn, state, "pre-restore", env)
    result = await _provider_command(conn, provider, "restore", *env)
    _report(progress, provider, result)
    if result.exit_status != 0:
        raise _failed(conn, f"restoring state '{state.name}' from {name}", result)
    await _state_hook(conn, state, "post-restore", env)


def restore_backup(
    clan: Clan, machine: str, provider: str, name: str, service: str | None = None,
    opts: HostOptions | None = None, progress: Progress = no_progress,
) -> RestoredBackup:
    """Restore backup `name` of `provider`: every state of the machine, or only state `service`."""
    config = _config(clan, machine)
    _chosen_providers(config, machine, provider)
    states = _chosen_states(config, machine, service)
    if not name.strip() or "\n" in name:
        raise ClanError.single("usage-error", "NAME", f"invalid backup name {name!r}", hint="see `pyclan backups list`")
    units = list(dict.fromkeys(u for s in states for u in s.stop_on_restore))

    async def go() -> list[str]:
        async with await _session(clan, machine, opts or HostOptions()) as conn:
            stopped = await _stop_units(conn, units)
            if stopped:
                progress(f"stopped {', '.join(stopped)}")
            failures: list[Problem] = []
            try:
                for state in states:  # as Clan: a state that fails does not keep the others from being restored
                    try:
                        await _restore_state(conn, provider, name, state, progress)
                    except ClanError as err:
                        failures += err.problems
            finally:
                if stopped:
                    started = await conn.run('systemctl start -- "$@"', *stopped)
                    if started.exit_status != 0:
                        raise _failed(conn, "starting " + ", ".join(stopped) + " again", started)
                    progress(f"started {', '.join(stopped)}")
            if failures:
                raise ClanError(failures)
            return stopped

    restarted = asyncio.run(go())
    return RestoredBackup(machine, provider, name, [s.name for s in states], _folders(states), restarted)
