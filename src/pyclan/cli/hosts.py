"""`pyclan hosts`: run inventory machines as real local Debian hosts (thin over `pyclan.api.hosts`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pyclan.cli.common import FlakeOpt, JsonOpt, console, emit, flake, note

if TYPE_CHECKING:
    from pyclan.api.hosts import LocalHost

app = typer.Typer(
    help="Local test hosts: each machine becomes a Debian host booted with systemd-nspawn.",
    no_args_is_help=True,
)


def _print_hosts(infos: list[LocalHost], as_json: bool) -> None:
    if emit(infos, as_json):
        return
    if not infos:
        note("no local hosts")
        return
    from rich.table import Table

    table = Table("name", "address", "running", "pid", "host key")
    for i in infos:
        key = i.host_key.split()[-1]
        table.add_row(
            i.name,
            i.address,
            "yes" if i.running else "[red]no[/red]",
            str(i.pid or "-"),
            f"{key[:12]}…" if len(key) > 12 else key,
        )
    console().print(table)


@app.command()
def up(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines to start.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Start every machine of the inventory.")] = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Start a local host for each machine (already running ones are kept)."""
    from pyclan.api.hosts import hosts_up

    _print_hosts(hosts_up(machines, all_, flake=flake(flake_dir), progress=note), json_out)


@app.command()
def down(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines to stop (default: every host).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Stop every machine of the inventory.")] = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Stop hosts and remove every trace of them (no names: every host; the proxy and the bridge go with the last)."""
    from pyclan.api.hosts import hosts_down

    result = hosts_down(machines, all_, flake=flake(flake_dir))
    if not emit(result, json_out):
        note(f"stopped: {', '.join(result.stopped)}" if result.stopped else "no host was running")


@app.command()
def status(json_out: JsonOpt = False) -> None:
    """List the local hosts with their address, state and host key."""
    from pyclan.api.hosts import hosts_status

    _print_hosts(hosts_status(), json_out)
