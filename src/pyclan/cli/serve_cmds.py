"""`pyclan serve`: the API and the web UI over HTTP (see pyclan.serve)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pyclan.cli import common
from pyclan.cli.common import FlakeOpt, JsonOpt


def serve_cmd(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback unless you mean otherwise).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one).")] = 8765,
    flake: FlakeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Serve the clan's API and web UI; prints the URL with the access token (`--json`: as one
    JSON line `{clan, url, host, port}`, for tools that start the server)."""
    from pyclan.inventory.load import find_clan_dir
    from pyclan.serve.server import serve

    chosen = common.flake(flake)
    clan_dir = find_clan_dir(Path(chosen) if chosen else None)
    serve(clan_dir, host, port, as_json=json_out)
