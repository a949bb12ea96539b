"""The `pyclan` command: a thin layer over the library (one sub-app per concept)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from pyclan.cli import common
from pyclan.cli.common import OPTIONS, print_problems
from pyclan.errors import ClanError, Problem

app = typer.Typer(
    name="pyclan",
    help="Declarative distributed services for fleets of Linux machines (Clan's model, in Python).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _global(
    flake: Annotated[
        Path | None, typer.Option("--flake", "-C", help="The clan directory (default: $CLAN_DIR or search upwards).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks of internal errors.")] = False,
) -> None:
    """Global options. Also: `--override-input NAME PATH` (repeatable) uses PATH for input NAME."""
    OPTIONS.flake = flake
    OPTIONS.debug = debug


def _register() -> None:
    from pyclan.cli import inventory_cmds

    inventory_cmds.register(app)
    for name in ("api_cmds", "vars_cmds", "hosts", "inputs_cmds", "deploy_cmds", "network_cmds"):
        try:
            module = __import__(f"pyclan.cli.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"pyclan.cli.{name}":
                raise
            continue
        if hasattr(module, "register"):
            module.register(app)
        else:  # a module exposing a sub-app named like itself
            app.add_typer(module.app, name=name)


def _take_overrides(argv: list[str]) -> list[str]:
    """Pull `--override-input NAME PATH` pairs out of argv (typer has no two-value lists)."""
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg == "--override-input":
            if i + 2 >= len(argv):
                raise ClanError.single("usage-error", "--override-input", "--override-input needs NAME and PATH")
            OPTIONS.input_overrides[argv[i + 1]] = Path(argv[i + 2]).resolve()
            i += 3
            continue
        rest.append(arg)
        i += 1
    return rest


def run() -> None:
    """Console-script entry: no input ever produces a Python traceback for a user error."""
    as_json = "--json" in sys.argv
    try:
        argv = _take_overrides(sys.argv[1:])
        _register()
        app(args=argv, prog_name="pyclan", standalone_mode=True)
    except ClanError as err:
        print_problems(err.problems, as_json)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if OPTIONS.debug:
            raise
        print_problems(
            [Problem("internal-error", "", f"{type(exc).__name__}: {exc}", hint="run with --debug for a traceback")],
            as_json,
        )
        sys.exit(2)


__all__ = ["app", "common", "run"]
