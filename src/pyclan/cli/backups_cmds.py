"""`pyclan backups list / create / restore` (Clan's verbs) — thin over `pyclan.api.backups`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from pyclan.api import backups as backups_api
from pyclan.cli.common import FlakeOpt, JsonOpt, clan_args, emit, note, say
from pyclan.cli.deploy_cmds import KeyCheck, KeyCheckOpt, TargetOpt

backups_app = typer.Typer(
    help="Backups of the machines' state with their backup providers (borgbackup, localbackup).",
    no_args_is_help=True,
)

MachineArg = Annotated[str, typer.Argument(help="The machine.")]



def _progress(json_out: bool) -> Callable[[str], None]:
    """Progress goes to stderr (stdout stays the result, JSON or plain lines)."""
    return (lambda line: None) if json_out else note


@backups_app.command("list")
def list_cmd(
    machine: MachineArg,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this backup provider.")] = None,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = KeyCheck.STRICT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """List the backups of MACHINE (one `provider name` a line)."""
    found = backups_api.list_backups(machine, provider, target_host, host_key_check.value, **clan_args(flake_dir))
    if not emit(found, json_out):
        for backup in found.backups:
            say(f"{backup.provider} {backup.name}")


@backups_app.command("create")
def create_cmd(
    machine: MachineArg,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider (default: all).")] = None,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = KeyCheck.STRICT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Back up every state folder of MACHINE with its backup providers."""
    made = backups_api.create_backup(
        machine, provider, target_host, host_key_check.value, progress=_progress(json_out), **clan_args(flake_dir)
    )
    if not emit(made, json_out):
        note(f"backed up {machine} with {', '.join(made.providers)}")


@backups_app.command("restore")
def restore_cmd(
    machine: MachineArg,
    provider: Annotated[str, typer.Argument(help="The backup provider (borgbackup, localbackup, …).")],
    name: Annotated[str, typer.Argument(help="The backup, as `pyclan backups list` names it.")],
    service: Annotated[str | None, typer.Option("--service", help="Restore only this service's state.")] = None,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = KeyCheck.STRICT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Restore backup NAME of PROVIDER on MACHINE: every state, or only --service's."""
    done = backups_api.restore_backup(
        machine, provider, name, service, target_host, host_key_check.value, progress=_progress(json_out),
        **clan_args(flake_dir),
    )  # fmt: skip
    if not emit(done, json_out):
        note(f"restored {', '.join(done.services)} on {machine} from {name}")
