"""`pyclan api`: the JSON API from the command line (the same functions the CLI uses)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from pyclan import api
from pyclan.cli.common import print_json

api_app = typer.Typer(help="Call library functions with JSON (for tools and UIs).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(api_app, name="api")


@api_app.command("list")
def api_list() -> None:
    """Every API function with its arguments and return type."""
    print_json(api.describe())


@api_app.command("call")
def api_call(
    name: Annotated[str, typer.Argument(help="Function name, see `pyclan api list`.")],
    args: Annotated[str, typer.Option("--args", help="Arguments as a JSON object; '-' reads stdin.")] = "{}",
) -> None:
    """Call one function; prints {"status": "success", "data": …} or {"status": "error", "errors": […]}."""
    raw = sys.stdin.read() if args == "-" else args
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        print_json({"status": "error", "errors": [{"kind": "parse-error", "path": "--args", "message": str(exc)}]})
        raise typer.Exit(1) from None
    if not isinstance(parsed, dict):
        print_json(
            {
                "status": "error",
                "errors": [{"kind": "usage-error", "path": "--args", "message": "expected a JSON object"}],
            }
        )
        raise typer.Exit(1)
    result = api.call(name, parsed)
    print_json(result)
    if result["status"] != "success":
        raise typer.Exit(1)
