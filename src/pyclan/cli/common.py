"""Shared CLI plumbing: global options, opening the clan, printing JSON, tables and problems."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from pyclan.clan import RUNTIME, Clan, open_clan
from pyclan.errors import ClanError, Problem

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


# Global options given before the command (`--override-input` is parsed by `main.run`).
OPTIONS = RUNTIME


def get_clan(flake: Path | None = None) -> Clan:
    return open_clan(flake)


def inventory_machine_names(flake: Path | None = None) -> list[str]:
    """All machine names of the clan (for `--all` flags)."""
    return sorted(get_clan(flake).loaded.inventory.machines)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def print_problems(problems: list[Problem], as_json: bool) -> None:
    if as_json:
        print_json({"errors": [p.to_json() for p in problems]})
        return
    err_console.print(f"[bold red]error:[/] {len(problems)} problem(s) found", highlight=False)
    for p in problems:
        err_console.print("[red]•[/] ", end="")
        err_console.print(f"[{p.kind}] {p.render()}", highlight=False, markup=False)


def fail(err: ClanError, as_json: bool = False) -> None:
    print_problems(err.problems, as_json)
    raise typer.Exit(1)


JsonFlag = typer.Option(False, "--json", help="Print machine-readable JSON.")
FlakeOption = typer.Option(None, "--flake", "-C", help="The clan directory (default: search upwards).")
