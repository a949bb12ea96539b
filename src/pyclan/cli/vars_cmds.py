"""`pyclan vars …` (alias `va`): keygen, generate, list, get, set, check — thin over `pyclan.vars.api`."""

from __future__ import annotations

import base64
import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from pyclan.cli.common import OPTIONS, fail, get_clan, print_json
from pyclan.errors import ClanError
from pyclan.lock import set_default_wait
from pyclan.vars import api

vars_app = typer.Typer(
    help="Vars: generated secrets (age-encrypted) and public values of the machines.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
MachineArg = Annotated[str, typer.Argument(help="The machine.")]
VarIdArg = Annotated[str, typer.Argument(help="The var id: <generator>/<file>.")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another command is changing the clan.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Accept a change of recipients (keys added/removed).")]


def _say(text: str) -> None:
    """Plain lines (no wrapping or markup): scripts and tests read them."""
    sys.stdout.write(text + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(vars_app, name="vars")
    app.add_typer(vars_app, name="va", hidden=True)


@vars_app.command("keygen")
def keygen_cmd(
    user: Annotated[str | None, typer.Option("--user", help="Admin name (default: $USER, else root).")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace this user's registered key.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create (or reuse) your admin age key and register it as keys/admins/<user>.pub."""
    from pyclan.inventory.load import find_clan_dir

    try:
        result = api.keygen(find_clan_dir(OPTIONS.flake), user, force)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(result.to_json())
        return
    verb = "created" if result.created_key else "reusing"
    _say(f"{verb} admin key {result.key_file}")
    _say(f"registered {result.public_key} as {result.registered}")
    _say("next: `pyclan vars generate` re-encrypts existing secrets for this key "
         "(run by an admin who can already read them)")


@vars_app.command("generate")
def generate_cmd(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines (default: all).")] = None,
    generator: Annotated[
        list[str] | None, typer.Option("--generator", "-g", help="Run this generator even if complete (repeatable).")
    ] = None,
    regenerate: Annotated[bool, typer.Option("--regenerate", "-r", help="Run every selected generator again.")] = False,
    prompt_values: Annotated[
        Path | None,
        typer.Option("--prompt-values", help='JSON answers: {"<gen>" or "<machine>/<gen>": {"<prompt>": "…"}}.'),
    ] = None,
    no_sandbox: Annotated[bool, typer.Option("--no-sandbox", help="Run scripts without bubblewrap.")] = False,
    no_check: Annotated[bool, typer.Option("--no-check", help="Skip the inventory constraint checks.")] = False,
    yes: YesOpt = False,
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Run missing or outdated generators (plus their dependents) and store their vars."""
    set_default_wait(not no_wait)
    try:
        report = api.generate(
            get_clan(), machines or None, generator or None, regenerate=regenerate,
            prompt_values=prompt_values, sandbox=not no_sandbox, no_check=no_check, yes=yes,
        )
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(report.to_json())
        return
    for m in report.machine_keys_created:
        _say(f"created age key of machine {m} (keys/machines/{m}.pub)")
    for label in report.generated:
        _say(f"generated {label}")
    for what in report.reencrypted:
        _say(f"re-encrypted {what}")
    for m in report.machine_keys_reencrypted:
        _say(f"re-encrypted the age key of machine {m}")
    if not (report.generated or report.reencrypted or report.machine_keys_reencrypted):
        _say("all vars are up to date")


@vars_app.command("list")
def list_cmd(machine: MachineArg, json_out: JsonOpt = False) -> None:
    """List a machine's vars: `<gen>/<file>: <value>` (secrets masked)."""
    try:
        entries = api.list_machine_vars(get_clan(), machine)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json([e.to_json() for e in entries])
        return
    for e in entries:
        sys.stdout.write(f"{e.id}: {e.shown()}\n")


@vars_app.command("get")
def get_cmd(machine: MachineArg, var_id: VarIdArg, json_out: JsonOpt = False) -> None:
    """Print a var's value (a unique prefix of the id is enough; secrets need the admin key)."""
    try:
        entry, value = api.get(get_clan(), machine, var_id)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        try:
            data = {"id": entry.id, "secret": entry.secret, "value": value.decode()}
        except UnicodeDecodeError:
            data = {"id": entry.id, "secret": entry.secret, "base64": base64.b64encode(value).decode()}
        print_json(data)
        return
    if entry.id != var_id:
        sys.stderr.write(f"note: {var_id!r} matched {entry.id}\n")
    sys.stdout.buffer.write(value)
    sys.stdout.flush()


@vars_app.command("set")
def set_cmd(machine: MachineArg, var_id: VarIdArg, no_wait: NoWaitOpt = False, json_out: JsonOpt = False) -> None:
    """Set a var from stdin (asked for, hidden, when stdin is a terminal)."""
    set_default_wait(not no_wait)
    try:
        clan = get_clan()
        if sys.stdin.isatty():
            value = getpass.getpass(f"value for {machine} {var_id}: ").encode()
        else:
            value = sys.stdin.buffer.read()
        entry = api.set_value(clan, machine, var_id, value)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json({"id": entry.id, "secret": entry.secret, "set": True})
        return
    _say(f"set {machine} {entry.id}" + (" (encrypted)" if entry.secret else ""))


@vars_app.command("check")
def check_cmd(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines (default: all).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Exit 1 if any var is missing, outdated, undecryptable or encrypted to the wrong keys."""
    try:
        report = api.check(get_clan(), machines or None)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(report.to_json())
    else:
        for note in report.notes:
            sys.stderr.write(f"note: {note}\n")
        for issue in report.issues:
            _say(f"{issue.kind}: {issue.var}: {issue.message}\n  fix: {issue.fix}")
        if report.ok:
            _say(f"ok: {report.checked} generator(s) of {len(report.machines)} machine(s)")
        else:
            sys.stderr.write(f"{len(report.issues)} problem(s) found\n")
    if not report.ok:
        raise typer.Exit(1)
