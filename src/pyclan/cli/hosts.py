"""`pyclan hosts`: run inventory machines as real local Debian hosts (thin over the library)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pyclan.deploy import hosts as lib
from pyclan.errors import ClanError, Problem

app = typer.Typer(
    help="Local test hosts: each machine becomes a Debian host booted with systemd-nspawn.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


def _fail(problems: list[Problem], code: int = 1) -> typer.Exit:
    for problem in problems:
        print(problem.render(), file=sys.stderr)
    return typer.Exit(code)


def _print_hosts(infos: list[lib.HostInfo], as_json: bool) -> None:
    if as_json:
        print(json.dumps([i.to_json() for i in infos], indent=2))
        return
    if not infos:
        err.print("no local hosts")
        return
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
    out.print(table)


@app.command()
def up(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines to start.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Start every machine of the inventory.")] = False,
    flake: Annotated[Path | None, typer.Option("--flake", "-C", help="The clan directory (for --all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hosts as JSON.")] = False,
) -> None:
    """Start a local host for each machine (already running ones are kept)."""
    try:
        names = list(machines or [])
        if all_:
            from pyclan.cli.common import inventory_machine_names

            names += [n for n in inventory_machine_names(flake) if n not in names]
        if not names:
            raise _fail([Problem("usage-error", "hosts up", "name machines to start, or use --all")], 2)
        cfg = lib.HostsConfig.from_env()
        if not lib.rootfs_ready(cfg.rootfs):
            err.print(f"building the Debian rootfs once at {cfg.rootfs} (about 40 s)…")
        infos = lib.up(names, config=cfg, addresses=_network_addresses(names, flake))
    except ClanError as exc:
        raise _fail(exc.problems) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    _print_hosts(infos, as_json)


def _network_addresses(names: list[str], flake: Path | None) -> dict[str, str]:
    """Each machine's best address over the clan's networks, if a clan is at hand: hosts take it when they can."""
    from pyclan.cli.common import get_clan
    from pyclan.deploy.networks import clan_networks, wished_local_address

    try:
        nets = clan_networks(get_clan(flake))
    except ClanError:
        return {}
    found = {n: wished_local_address(nets, n) for n in names}
    return {n: h for n, h in found.items() if h}


@app.command()
def down(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines to stop (default: all).")] = None,
) -> None:
    """Stop hosts and remove every trace of them (no names: all hosts, the proxy and the bridge)."""
    try:
        stopped = lib.down(machines or None)
    except ClanError as exc:
        raise _fail(exc.problems) from None
    err.print(f"stopped: {', '.join(stopped)}" if stopped else "no host was running")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the hosts as JSON.")] = False,
) -> None:
    """List the local hosts with their address, state and host key."""
    try:
        infos = lib.status()
    except ClanError as exc:
        raise _fail(exc.problems) from None
    _print_hosts(infos, as_json)
