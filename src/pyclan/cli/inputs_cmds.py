"""`pyclan inputs list|update`: the clan's declared inputs and their lock file `clan.lock`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pyclan.cli.common import FlakeOpt, JsonOpt, clan_args, console, emit, flake

if TYPE_CHECKING:
    from pyclan.api.inputs import InputsUpdate, InputUpdateInfo

inputs_app = typer.Typer(
    help="Inputs: service modules from git repositories, folders and Python packages (clan.lock).",
    no_args_is_help=True,
)



def _note(message: str) -> None:
    from rich.markup import escape

    console(stderr=True).print(f"[cyan]note:[/] {escape(message)}", highlight=False)


@inputs_app.command("list")
def list_cmd(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """Show each input, its kind, what it is locked to, and the services it provides."""
    from pyclan.api.inputs import list_inputs

    rows = list_inputs(**clan_args(flake_dir), notify=_note)
    if not emit(rows, json_out):
        from rich.table import Table

        table = Table("input", "kind", "source", "locked", "services")
        for row in rows:
            locked = row.locked or {}
            pinned = (locked.get("rev") or "")[:12] or locked.get("version") or (locked.get("hash") or "")[:19]
            if row.overridden:
                pinned = f"overridden: {row.overridden}"
            services = f"error: {row.error}" if row.error else ", ".join(row.services) or "(none)"
            table.add_row(row.name, row.kind, row.source, pinned or "-", services)
        console().print(table)
    if any(row.error for row in rows):
        raise typer.Exit(1)


@inputs_app.command("update")
def update_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Inputs to update (default: all).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Fail at once if another command is changing the clan.")
    ] = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Follow each input's ref again, show what changed, then write clan.lock."""
    from pyclan.api.inputs import update_inputs
    from pyclan.lock import set_default_wait

    set_default_wait(not no_wait)

    plan = update_inputs(names or None, dry_run=dry_run, flake=flake(flake_dir), notify=_note)
    if emit(plan, json_out):
        return
    _print_plan(plan)
    out = console()
    if not plan.changed:
        out.print("clan.lock is up to date")
    elif not plan.written:
        out.print("dry run: clan.lock not written")
    else:
        out.print(f"wrote {plan.lock.rsplit('/', 1)[-1]}")


def _print_plan(plan: InputsUpdate) -> None:
    from rich.markup import escape

    for update in plan.inputs:
        _print_update(update)
    for name in plan.removed:
        console().print(f"[bold]{escape(name)}[/]: no longer declared; removed from clan.lock", highlight=False)


def _print_update(update: InputUpdateInfo) -> None:
    from rich.markup import escape

    out = console()
    head = f"[bold]{escape(update.name)}[/] ({update.kind})"
    if update.old is None:
        out.print(f"{head}: locked at {escape(update.short)}  {escape(update.source)}", highlight=False)
    elif not update.changed:
        out.print(f"{head}: unchanged ({escape(update.short)})", highlight=False)
    else:
        moved = f"{escape(update.oldShort or '')} → {escape(update.short)}"
        out.print(f"{head}: {moved}  {escape(update.source)}", highlight=False)
        if update.oldSource != update.source:
            out.print(f"  source: {escape(update.oldSource or '')} → {escape(update.source)}", highlight=False)
    if update.commits:
        out.print(f"  commits ({len(update.commits)}):", highlight=False)
        for line in update.commits:
            out.print(f"    {escape(line)}", highlight=False)
    if update.files:
        width = max(len(c.path) for c in update.files)
        out.print(f"  files changed ({len(update.files)}):", highlight=False)
        for change in update.files:
            binary = change.added is None or change.deleted is None
            counts = "binary" if binary else f"+{change.added} -{change.deleted}"
            out.print(f"    {change.status} {escape(change.path.ljust(width))} | {counts}", highlight=False)
    if update.note:
        out.print(f"  note: {escape(update.note)}", highlight=False)
