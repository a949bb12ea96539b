"""`pyclan network list | ping | overview` (thin over the API functions; `--json` prints their result)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from pyclan.cli.common import FlakeOpt, JsonOpt, console, emit, err_console, flake

network_app = typer.Typer(
    help="The clan's networks (internet, wireguard, zerotier, …): how each machine is reached.",
    no_args_is_help=True,
)

ProbeTimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0.05, help="Seconds each probe waits for the SSH port to answer.")
]



def _call(name: str, json_out: bool, flake_dir: Any, **args: Any) -> Any:
    """Call the API function; with `--json` print its result and stop (errors: cli.main's handler)."""
    from pyclan import api

    result = getattr(api, name)(flake=flake(flake_dir), **args)
    if emit(result, json_out):
        raise typer.Exit(0)
    return result


def _cell(probe: Any) -> str:
    if probe is None:
        return "-"
    if probe.reachable:
        return f"[green]reachable[/] {probe.latency_ms:.1f} ms"
    return f"[red]unreachable[/] ({probe.error})"


@network_app.command("list")
def list_cmd(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """List the networks, best priority first, with their module and members."""
    nets = _call("list_networks", json_out, flake_dir)
    if not nets:
        err_console.print("no networks: no service instance exports `networking`")
        return
    table = Table("network", "service", "priority", "module", "members", show_edge=False)
    for n in nets:
        module = n.module + (f" [yellow](not probed: {n.unsupported})[/]" if n.unsupported else "")
        table.add_row(n.name, n.service, str(n.priority), module, ", ".join(n.members) or "(none)")
    console().print(table)


@network_app.command("ping")
def ping_cmd(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines to probe (default: all).")] = None,
    network: Annotated[str | None, typer.Option("--network", "-n", help="Only this network.")] = None,
    timeout: ProbeTimeoutOpt = 2.0,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Probe each machine's SSH port over each of its networks: reachable, latency (exit 1 if one is unreachable)."""
    pings = _call("ping_machines", json_out, flake_dir, machines=machines or [], network=network, timeout=timeout)
    table = Table("machine", "network", "priority", "address", "result", show_edge=False)
    for p in pings:
        if not p.routes:
            table.add_row(p.machine, "-", "-", "-", "[yellow]in no network[/]")
        for r in p.routes:
            mark = " [bold](used)[/]" if r.reachable and r.network == p.best else ""
            table.add_row(p.machine, r.network, str(r.priority), r.address, _cell(r) + mark)
    console().print(table)
    if any(p.routes and p.best is None for p in pings):
        raise typer.Exit(1)


@network_app.command("overview")
def overview_cmd(timeout: ProbeTimeoutOpt = 2.0, json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """Machines × networks: whether each machine answers over each network, and why not."""
    view = _call("network_overview", json_out, flake_dir, timeout=timeout)
    if not view.networks:
        err_console.print("no networks: no service instance exports `networking`")
        return
    table = Table("machine", *(f"{n.name} ({n.priority})" for n in view.networks), show_edge=False)
    for machine, cells in view.machines.items():
        table.add_row(machine, *(_cell(cells.get(n.name)) for n in view.networks))
    console().print(table)
