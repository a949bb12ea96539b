"""`pyclan inputs list|update`: the clan's declared inputs and their lock file `clan.lock`."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pyclan.cli.common import console, err_console, fail, get_clan, print_json
from pyclan.errors import ClanError
from pyclan.inputs import InputSet, InputUpdate, UpdatePlan, plan_update
from pyclan.inputs.listing import describe_inputs
from pyclan.lock import clan_lock

inputs_app = typer.Typer(
    help="Inputs: service modules from git repositories, folders and Python packages (clan.lock).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(inputs_app, name="inputs")


def _input_set(with_overrides: bool = True) -> InputSet:
    clan = get_clan()
    overrides = clan.input_overrides if with_overrides else {}
    return InputSet(clan.dir, clan.loaded.inventory.inputs, overrides, notify=_note)


def _note(message: str) -> None:
    err_console.print(f"[cyan]note:[/] {escape(message)}", highlight=False)


@inputs_app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """Show each input, its kind, what it is locked to, and the services it provides."""
    try:
        rows = describe_inputs(_input_set())
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(rows)
    else:
        table = Table("input", "kind", "source", "locked", "services")
        for name, row in rows.items():
            locked = row["locked"] or {}
            pinned = (locked.get("rev") or "")[:12] or locked.get("version") or (locked.get("hash") or "")[:19]
            if row["overridden"]:
                pinned = f"overridden: {row['overridden']}"
            services = f"error: {row['error']}" if row["error"] else ", ".join(row["services"]) or "(none)"
            table.add_row(name, row["kind"], row["source"], pinned or "-", services)
        console.print(table)
    if any(row["error"] for row in rows.values()):
        raise typer.Exit(1)


@inputs_app.command("update")
def update_cmd(
    names: Annotated[list[str] | None, typer.Argument(help="Inputs to update (default: all).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Fail at once if another command is changing the clan.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Follow each input's ref again, show what changed, then write clan.lock."""
    with ExitStack() as held:
        try:
            inputs = _input_set(with_overrides=False)
            if not dry_run:  # one writer per clan (pyclan.lock): plan and write under the lock
                held.enter_context(clan_lock(inputs.clan_dir, "pyclan inputs update", wait=not no_wait))
            plan = plan_update(inputs, names or [])
        except ClanError as err:
            fail(err, json_out)
        _update(plan, dry_run, json_out)


def _update(plan: UpdatePlan, dry_run: bool, json_out: bool) -> None:
    if json_out:
        print_json(plan.to_json() | {"written": plan.changed and not dry_run})
    else:
        _print_plan(plan)
    if dry_run or not plan.changed:
        if not json_out:
            console.print("clan.lock is up to date" if not plan.changed else "dry run: clan.lock not written")
        return
    plan.apply()
    if not json_out:
        console.print(f"wrote {plan.lock.path.name}")


def _print_plan(plan: UpdatePlan) -> None:
    for update in plan.updates:
        _print_update(update)
    for name in plan.removed:
        console.print(f"[bold]{escape(name)}[/]: no longer declared; removed from clan.lock", highlight=False)


def _print_update(update: InputUpdate) -> None:
    new = update.new
    head = f"[bold]{escape(update.name)}[/] ({new.kind})"
    if update.old is None:
        console.print(f"{head}: locked at {escape(new.short)}  {escape(new.source)}", highlight=False)
    elif not update.changed:
        console.print(f"{head}: unchanged ({escape(new.short)})", highlight=False)
    else:
        moved = f"{escape(update.old.short)} → {escape(new.short)}"
        console.print(f"{head}: {moved}  {escape(new.source)}", highlight=False)
        if update.old.source != new.source:
            console.print(f"  source: {escape(update.old.source)} → {escape(new.source)}", highlight=False)
    if update.commits:
        console.print(f"  commits ({len(update.commits)}):", highlight=False)
        for line in update.commits:
            console.print(f"    {escape(line)}", highlight=False)
    if update.changes:
        width = max(len(c.path) for c in update.changes)
        console.print(f"  files changed ({len(update.changes)}):", highlight=False)
        for change in update.changes:
            counts = (
                "binary"
                if change.added is None or change.deleted is None
                else f"+{change.added} -{change.deleted}"
            )
            console.print(f"    {change.status} {escape(change.path.ljust(width))} | {counts}", highlight=False)
    if update.note:
        console.print(f"  note: {escape(update.note)}", highlight=False)
