"""`pyclan api`: the JSON API from the command line (the same functions the CLI uses)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from pyclan import api
from pyclan.cli.common import CURRENT, JsonOpt, print_json
from pyclan.errors import Problem

api_app = typer.Typer(help="Call library functions with JSON (for tools and UIs).", no_args_is_help=True)



@api_app.command("list")
def api_list(json_out: JsonOpt = True) -> None:
    """Every API function with its parameters' and its result's JSON Schema (always JSON)."""
    print_json(api.describe())


@api_app.command("call")
def api_call(
    name: Annotated[str, typer.Argument(help="Function name, see `pyclan api list`.")],
    args: Annotated[str, typer.Option("--args", help="Arguments as a JSON object; '-' reads stdin.")] = "{}",
    json_out: JsonOpt = True,
) -> None:
    """Call one function; prints {"status": "success", "data": …} or {"status": "error", "errors": […]}."""
    raw = sys.stdin.read() if args == "-" else args
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        print_json(api.error_envelope([Problem("parse-error", "--args", str(exc))]))
        raise typer.Exit(1) from None
    if not isinstance(parsed, dict):
        print_json(api.error_envelope([Problem("usage-error", "--args", "expected a JSON object")]))
        raise typer.Exit(1)
    if CURRENT.flake is not None and "flake" not in parsed and "flake" in _parameters(name):
        parsed["flake"] = str(CURRENT.flake)
    result = api.call(name, parsed)
    print_json(result)
    if result["status"] != "success":
        raise typer.Exit(1)


def _parameters(name: str) -> set[str]:
    import inspect

    fn = api.load_all().get(name)
    return set(inspect.signature(fn).parameters) if fn is not None else set()
