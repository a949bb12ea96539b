"""`pyclan backups list / create / restore` (Clan's verbs) — thin over `pyclan.deploy.backups`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from pyclan.api import to_jsonable
from pyclan.cli.common import FlakeOpt, err_console, fail, get_clan, print_json
from pyclan.deploy import backups
from pyclan.deploy.backups import HostOptions
from pyclan.deploy.transport import HostKeyCheck
from pyclan.errors import ClanError

backups_app = typer.Typer(
    help="Backups of the machines' state with their backup providers (borgbackup, localbackup).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
MachineArg = Annotated[str, typer.Argument(help="The machine.")]
TargetOpt = Annotated[
    str | None, typer.Option("--target-host", help="Reach the machine at \\[user@]host\\[:port] instead.")
]
KeyCheckOpt = Annotated[
    HostKeyCheck,
    typer.Option("--host-key-check", case_sensitive=False, help="strict, ask, tofu or none (as for deploy)."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(backups_app, name="backups")
    app.add_typer(backups_app, name="b", hidden=True)  # Clan's alias


def _progress(json_out: bool) -> Callable[[str], None]:
    """Progress goes to stderr (stdout stays the result, JSON or plain lines)."""

    def say(line: str) -> None:
        if not json_out:
            err_console.print(line, highlight=False, markup=False)

    return say


def _options(target_host: str | None, check: HostKeyCheck) -> HostOptions:
    return HostOptions(target_host, check)


@backups_app.command("list")
def list_cmd(
    machine: MachineArg,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this backup provider.")] = None,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = HostKeyCheck.STRICT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """List the backups of MACHINE (one `provider name` a line)."""
    try:
        options = _options(target_host, host_key_check)
        found = backups.list_backups(get_clan(flake_dir), machine, provider, options)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(to_jsonable(found))
        return
    for backup in found.backups:
        sys.stdout.write(f"{backup.provider} {backup.name}\n")


@backups_app.command("create")
def create_cmd(
    machine: MachineArg,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider (default: all).")] = None,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = HostKeyCheck.STRICT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Back up every state folder of MACHINE with its backup providers."""
    try:
        made = backups.create_backups(
            get_clan(flake_dir), machine, provider, _options(target_host, host_key_check), _progress(json_out)
        )
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(to_jsonable(made))
        return
    err_console.print(f"backed up {machine} with {', '.join(made.providers)}", highlight=False, markup=False)


@backups_app.command("restore")
def restore_cmd(
    machine: MachineArg,
    provider: Annotated[str, typer.Argument(help="The backup provider (borgbackup, localbackup, …).")],
    name: Annotated[str, typer.Argument(help="The backup, as `pyclan backups list` names it.")],
    service: Annotated[str | None, typer.Option("--service", help="Restore only this service's state.")] = None,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = HostKeyCheck.STRICT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Restore backup NAME of PROVIDER on MACHINE: every state, or only --service's."""
    try:
        done = backups.restore_backup(
            get_clan(flake_dir), machine, provider, name, service, _options(target_host, host_key_check),
            _progress(json_out),
        )
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(to_jsonable(done))
        return
    err_console.print(f"restored {', '.join(done.services)} on {machine} from {name}", highlight=False, markup=False)
