"""`pyclan vars …` (alias `va`): keygen, generate, list, get, set, check, import — thin over `pyclan.api.vars`."""

from __future__ import annotations

import base64
import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from pyclan.api import vars as vars_api
from pyclan.cli.common import FlakeOpt, JsonOpt, clan_args, emit, flake, note, say
from pyclan.lock import set_default_wait
from pyclan.vars.layout import admin_pub_rel, machine_pub_rel

vars_app = typer.Typer(
    help="Vars: generated secrets (age-encrypted) and public values of the machines.", no_args_is_help=True
)

MachineArg = Annotated[str, typer.Argument(help="The machine.")]
VarIdArg = Annotated[str, typer.Argument(help="The var id: <generator>/<file>.")]
NOT_SET = "<not set>"
SECRET_MASK = "********"
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another command is changing the clan.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Accept a change of recipients (keys added/removed).")]



@vars_app.command("keygen")
def keygen_cmd(
    user: Annotated[str | None, typer.Option("--user", help="Admin name (default: $USER, else root).")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace this user's registered key.")] = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Create (or reuse) your admin age key and register it as keys/admins/<user>.pub."""
    result = vars_api.keygen(user, force, flake=flake(flake_dir))
    if emit(result, json_out):
        return
    verb = "created" if result.createdKey else "reusing"
    say(f"{verb} admin key {result.keyFile}")
    say(f"registered {result.publicKey} as {result.registered}")
    say("next: `pyclan vars generate` re-encrypts existing secrets for this key "
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
    flake_dir: FlakeOpt = None,
) -> None:
    """Run missing or outdated generators (plus their dependents) and store their vars."""
    set_default_wait(not no_wait)
    report = vars_api.run_generators(
        machines or None, generator or None, regenerate=regenerate,
        prompt_values=str(prompt_values) if prompt_values is not None else None,
        sandbox=not no_sandbox, no_check=no_check, yes=yes, **clan_args(flake_dir),
    )  # fmt: skip
    if emit(report, json_out):
        return
    for m in report.machineKeysCreated:
        say(f"created age key of machine {m} ({machine_pub_rel(m)})")
    for label in report.generated:
        say(f"generated {label}")
    for what in report.reencrypted:
        say(f"re-encrypted {what}")
    for m in report.machineKeysReencrypted:
        say(f"re-encrypted the age key of machine {m}")
    if not (report.generated or report.reencrypted or report.machineKeysReencrypted):
        say("all vars are up to date")


@vars_app.command("list")
def list_cmd(machine: MachineArg, json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """List a machine's vars: `<gen>/<file>: <value>` (secrets masked)."""
    entries = vars_api.list_vars(machine, **clan_args(flake_dir))
    if emit(entries, json_out):
        return
    for e in entries:
        shown = NOT_SET if not e.set else SECRET_MASK if e.secret else (e.value or "").removesuffix("\n")
        sys.stdout.write(f"{e.id}: {shown}\n")


@vars_app.command("get")
def get_cmd(machine: MachineArg, var_id: VarIdArg, json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """Print a var's value (a unique prefix of the id is enough; secrets need the admin key)."""
    value = vars_api.get_var(machine, var_id, **clan_args(flake_dir))
    if emit(value, json_out):
        return
    if value.id != var_id:
        note(f"note: {var_id!r} matched {value.id}")
    raw = base64.b64decode(value.base64) if value.base64 is not None else (value.value or "").encode()
    sys.stdout.buffer.write(raw)
    sys.stdout.flush()


@vars_app.command("set")
def set_cmd(
    machine: MachineArg,
    var_id: VarIdArg,
    no_sandbox: Annotated[bool, typer.Option("--no-sandbox", help="Re-run a prompt's generator without bubblewrap.")]
    = False,
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Set a var from stdin (asked for, hidden, when stdin is a terminal); a prompt's answer re-runs its generator."""
    set_default_wait(not no_wait)
    asked = sys.stdin.isatty()
    raw = getpass.getpass(f"value for {machine} {var_id}: ").encode() if asked else sys.stdin.buffer.read()
    try:
        text, as_base64 = raw.decode(), None
    except UnicodeDecodeError:
        text, as_base64 = None, base64.b64encode(raw).decode()
    entry = vars_api.set_var(machine, var_id, text, as_base64, not no_sandbox, **clan_args(flake_dir))
    if not emit(entry, json_out):
        say(f"set {machine} {entry.id}" + (" (encrypted)" if entry.secret else ""))
        for label in entry.regenerated:
            say(f"generated {label}")


@vars_app.command("check")
def check_cmd(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines (default: all).")] = None,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Exit 1 if any var is missing, outdated, undecryptable or encrypted to the wrong keys."""
    report = vars_api.check_vars(machines or None, **clan_args(flake_dir))
    if not emit(report, json_out):
        for text in report.notes:
            note(f"note: {text}")
        for issue in report.issues:
            say(f"{issue.kind}: {issue.var}: {issue.message}\n  fix: {issue.fix}")
        if report.ok:
            say(f"ok: {report.checked} generator(s) of {len(report.machines)} machine(s)")
        else:
            note(f"{len(report.issues)} problem(s) found")
    if not report.ok:
        raise typer.Exit(1)


@vars_app.command("import")
def import_cmd(
    from_clan: Annotated[bool, typer.Option("--from-clan", help="Import the vars Clan's sops backend wrote.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be imported; change nothing.")] = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Take over vars written by Clan (sops): decrypt with your sops age key, store them pyclan's way."""
    from pyclan.errors import ClanError

    if not from_clan:
        raise ClanError.single(
            "usage-error", "vars import", "say where to import from: --from-clan",
            hint="pyclan vars import --from-clan --dry-run",
        )
    report = vars_api.import_clan_vars(dry_run, **clan_args(flake_dir))
    if emit(report, json_out):
        return
    verb = "would import" if dry_run else "imported"
    would = "would " if dry_run else ""
    for user in report.admins:
        say(f"{would}{'register' if dry_run else 'registered'} Clan user {user} as an admin ({admin_pub_rel(user)})")
    for m in report.machine_keys:
        say(f"{would}{'take' if dry_run else 'took'} over the age key of machine {m} ({machine_pub_rel(m)})")
    for g in report.generators:
        files = ", ".join([*g.public, *(f"{f} (secret)" for f in g.secret)])
        say(f"{verb} {g.label}: {files} [{g.status}]" + (f"\n  note: {g.note}" if g.note else ""))
    for text in report.notes:
        say(f"note: {text}")
    if dry_run and (report.generators or report.admins or report.machine_keys):
        say("dry run: nothing was changed")
