"""What every command shares: the `--flake` and `--json` options, printing results and problems.

A command is thin: it calls one API function (`pyclan.api`) and either prints that function's
result as JSON (`--json`, exactly what `pyclan api call` returns as `data`) or renders it for
people. Errors are not handled here but once, by the root command (`cli.main`).
Rich is imported only when something is rendered for people (start-up time).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from pyclan.clan import Clan
    from pyclan.errors import ClanError, Problem


@dataclass
class Invocation:
    """The root options of the running command (set by the root callback on every invocation)."""

    flake: Path | None = None
    debug: bool = False
    pretty: bool = False
    input_overrides: dict[str, str] = field(default_factory=dict)


CURRENT = Invocation()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (the API's result).")]
FlakeOpt = Annotated[
    Path | None,
    typer.Option("--flake", "-C", help="The clan directory (default: $CLAN_DIR or search upwards)."),
]
TagsOpt = Annotated[
    list[str] | None,
    typer.Option("--tags", help="Only machines carrying all these tags: --tags a b, or --tags a --tags b."),
]


def flake(own: Path | None = None) -> str | None:
    """The clan directory: the command's own `-C`, else the global one."""
    chosen = own if own is not None else CURRENT.flake
    return str(chosen) if chosen is not None else None


def clan_args(own: Path | None = None) -> dict[str, Any]:
    """`flake` and `input_overrides` as the API functions take them."""
    return {"flake": flake(own), "input_overrides": dict(CURRENT.input_overrides) or None}


def emit(result: Any, as_json: bool) -> bool:
    """With `--json`, print the result exactly as the API returns it and say so."""
    if as_json:
        print_json(result)
    return as_json


def print_json(data: Any) -> None:
    """Compact JSON, indented on a terminal or with `--pretty`."""
    from pyclan.api import encode

    pretty = CURRENT.pretty or sys.stdout.isatty()
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    if out is None:  # a text-only stream (some test runners)
        sys.stdout.write(encode(data, pretty=pretty).decode() + "\n")
        return
    sys.stdout.flush()
    if pretty:
        out.write(encode(data, pretty=True))
    else:
        _stream(out, data, 2, encode)
    out.write(b"\n")
    out.flush()


def _stream(out: Any, value: Any, depth: int, encode: Any) -> None:
    """Compact JSON written in pieces: the outer `depth` levels of dicts one entry at a time,
    so a 100,000-machine result never exists twice in memory (as objects and as one text)."""
    if depth == 0 or type(value) is not dict:
        out.write(encode(value))
        return
    out.write(b"{")
    for i, (key, item) in enumerate(value.items()):
        out.write(b',"' if i else b'"')
        out.write(encode(str(key))[1:])
        out.write(b":")
        _stream(out, item, depth - 1, encode)
    out.write(b"}")


_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """The rich console for people (created, and rich imported, on first use)."""
    if stderr not in _consoles:
        from rich.console import Console

        _consoles[stderr] = Console(stderr=stderr, soft_wrap=True)
    return _consoles[stderr]


def say(text: str) -> None:
    """A plain line on stdout (no wrapping or markup): scripts and tests read it."""
    sys.stdout.write(text + "\n")


def note(text: str) -> None:
    """A plain line on stderr."""
    sys.stderr.write(text + "\n")


def print_problems(problems: list[Problem], as_json: bool) -> None:
    if as_json:
        print_json({"errors": [p.to_json() for p in problems]})
        return
    err = console(stderr=True)
    err.print(f"[bold red]error:[/] {len(problems)} problem(s) found", highlight=False)
    for p in problems:
        err.print("[red]•[/] ", end="")
        err.print(f"[{p.kind}] {p.render()}", highlight=False, markup=False)


def print_warnings(warnings: list[Any]) -> None:
    """Warnings (`{kind, path, message}`) on stderr."""
    if not warnings:
        return
    from rich.markup import escape

    err = console(stderr=True)
    for w in warnings:
        where = f"{w.path}: " if w.path and not w.message.startswith(w.path) else ""
        err.print(f"[yellow]warning:[/] {escape(where + w.message)}", highlight=False)


def print_checks(checks: list[Any]) -> None:
    """Constraint checks (`{id, message, severity}`) on stderr."""
    if not checks:
        return
    from rich.markup import escape

    err = console(stderr=True)
    for c in checks:
        colour = "red" if c.severity == "error" else "yellow"
        err.print(f"[{colour}]{c.severity}:[/] " + escape(f"[{c.id}] {c.message}"), highlight=False)


# -- for commands written before the API faces (other branches merge into this module) --------

OPTIONS = CURRENT


def get_clan(own: Path | None = None) -> Clan:
    """The clan of this command (its `-C`, else the global one), with the input overrides."""
    from pyclan.api.common import open_flake

    args = clan_args(own)
    return open_flake(args["flake"], args["input_overrides"])


def fail(err: ClanError, as_json: bool = False) -> NoReturn:
    """Re-raise: the root command prints every error once (as JSON with `--json`)."""
    raise err


def __getattr__(name: str) -> Any:
    if name == "err_console":  # the old module-level stderr console, made on first use
        return console(stderr=True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
