"""Inventory-level commands: init, show, check, machines list/config, services, inventory resolve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pyclan import api
from pyclan.cli.common import console, err_console, fail, print_json
from pyclan.errors import ClanError
from pyclan.lock import set_default_wait

machines_app = typer.Typer(help="Machines of the clan: list, configuration, build and deploy.", no_args_is_help=True)
services_app = typer.Typer(help="Service modules available to this clan.", no_args_is_help=True)
inventory_app = typer.Typer(help="The inventory as data, for tools.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another command is changing the clan.")]


def register(app: typer.Typer) -> None:
    app.command("init")(init_cmd)
    app.command("show")(show_cmd)
    app.command("check")(check_cmd)
    app.add_typer(machines_app, name="machines")
    app.add_typer(machines_app, name="m", hidden=True)
    app.add_typer(services_app, name="services")
    app.add_typer(inventory_app, name="inventory")


def init_cmd(
    directory: Annotated[Path, typer.Argument(help="Where to create the clan.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="The clan's name (default: the folder's name).")] = None,
    domain: Annotated[str, typer.Option(help="The clan's domain.")] = "clan",
) -> None:
    """Create a working starter clan (clan.toml, a self-defined service, .gitignore)."""
    try:
        created = api.init_clan(directory, name=name, domain=domain)
    except ClanError as err:
        fail(err)
    console.print(f"Created clan [bold]{created.name}[/] in {created.path}")
    console.print(f"Next: [bold]pyclan -C {directory} machines list[/], then [bold]pyclan -C {directory} check[/]")


def show_cmd(json_out: JsonOpt = False) -> None:
    """Print the clan's name, description and domain."""
    try:
        meta = api.get_clan_details()
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(meta)
        return
    console.print(f"Name: {meta['name']}", highlight=False)
    console.print(f"Description: {meta['description'] or '-'}", highlight=False)
    console.print(f"Domain: {meta['domain']}", highlight=False)


def check_cmd(json_out: JsonOpt = False) -> None:
    """Load, resolve and evaluate everything; report every problem and failed constraint."""
    try:
        report = api.check_clan()
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(report)
    else:
        for warning in report["warnings"]:
            err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        for check in report["checks"]:
            colour = "red" if check["severity"] == "error" else "yellow"
            err_console.print(f"[{colour}]{check['severity']}:[/] [{check['id']}] {check['message']}", highlight=False)
        if report["ok"]:
            console.print(f"[green]ok[/]: {report['machines']} machine(s), {report['instances']} instance(s)")
    if not report["ok"]:
        raise typer.Exit(1)


@machines_app.command("list")
def machines_list(
    tags: Annotated[list[str] | None, typer.Option("--tags", help="Only machines carrying all these tags.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List the inventory's machines."""
    try:
        machines = api.list_machines(tags or [])
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(machines)
        return
    table = Table("machine", "class", "tags", "target host", "description")
    for name, m in machines.items():
        table.add_row(
            name, m["machineClass"], ", ".join(m["tags"]), m["deploy"]["targetHost"] or "-", m["description"] or ""
        )
    console.print(table)


@machines_app.command("create")
def machines_create(
    name: Annotated[str, typer.Argument(help="The new machine's name.")],
    tags: Annotated[list[str] | None, typer.Option("--tags", help="Its tags.")] = None,
    target_host: Annotated[str | None, typer.Option("--target-host", help="deploy.targetHost")] = None,
    description: Annotated[str | None, typer.Option("--description", help="A description.")] = None,
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Add a machine to the inventory (clan.toml keeps its comments and layout)."""
    set_default_wait(not no_wait)
    try:
        result = api.create_machine(name, tags, target_host, description)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(result)
    else:
        console.print(f"added machine [bold]{name}[/] to {result['file']}")


@machines_app.command("delete")
def machines_delete(
    name: Annotated[str, typer.Argument(help="The machine to remove.")],
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Remove a machine, its vars and its machine key (refused while a role names it)."""
    set_default_wait(not no_wait)
    try:
        result = api.delete_machine(name)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(result)
    else:
        console.print(f"removed machine [bold]{name}[/]: " + ", ".join(result["removed"]))


@machines_app.command("config")
def machines_config(
    machine: Annotated[str, typer.Argument(help="The machine.")],
    json_out: JsonOpt = False,
) -> None:
    """Show a machine's complete evaluated configuration (secrets as references only)."""
    try:
        config = api.get_machine_config(machine)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(config)
        return
    _print_config(machine, config)


def _print_config(machine: str, config: dict[str, Any]) -> None:
    console.rule(f"[bold]{machine}")
    if config["packages"]:
        console.print("[bold]packages:[/] " + ", ".join(config["packages"]), highlight=False)
    for title, key, cols in (
        ("users", "users", ("name", "groups", "shell")),
        ("groups", "groups", ("name", "members")),
    ):
        if config[key]:
            table = Table(*cols, title=title, title_justify="left")
            for item in config[key].values():
                table.add_row(*(_cell(item.get(c)) for c in cols))
            console.print(table)
    if config["units"]:
        table = Table("unit", "enabled", "restart on", title="systemd units", title_justify="left")
        for u in config["units"].values():
            table.add_row(u["name"], str(u["enabled"]), _cell(u["restart_on"]))
        console.print(table)
    if config["secrets"]:
        table = Table("path", "var", "owner", "mode", title="secrets (placed at deploy)", title_justify="left")
        for s in config["secrets"].values():
            table.add_row(s["path"], f"{s['generator']}/{s['file']}", f"{s['owner']}:{s['group']}", s["mode"])
        console.print(table)
    if config["hooks"]:
        console.print("[bold]activation hooks:[/] " + ", ".join(config["hooks"]), highlight=False)
    for f in config["files"].values():
        console.print(f"[bold cyan]{f['path']}[/] ({f['mode']} {f['owner']}:{f['group']})", highlight=False)
        console.print(f["content"], markup=False, highlight=False, end="" if f["content"].endswith("\n") else "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


@services_app.command("list")
def services_list(json_out: JsonOpt = False) -> None:
    """List every service module this clan can use, and where it comes from."""
    try:
        services = api.list_service_modules()
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(services)
        return
    table = Table("service", "input", "roles", "description", "from")
    for s in services:
        table.add_row(s["name"], s["input"] or "(bundled)", ", ".join(s["roles"]), s["description"], s["origin"])
    console.print(table)


@services_app.command("show")
def services_show(
    name: Annotated[str, typer.Argument(help="The service module's name.")],
    input_name: Annotated[
        str | None, typer.Option("--input", help="The input providing it (default: bundled).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a service's manifest, roles and each role's settings JSON Schema."""
    try:
        info = api.get_service_module(name, input_name)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(info)
        return
    m = info["manifest"]
    console.print(f"[bold]{m['name']}[/]: {m['description']}", highlight=False)
    console.print(f"categories: {', '.join(m['categories'])}", highlight=False)
    for rname, role in info["roles"].items():
        console.rule(f"role {rname}")
        console.print(role["description"] or "(no description)", highlight=False)
        console.print_json(data=role["schema"])
    if m["readme"]:
        console.rule("readme")
        console.print(m["readme"], markup=False, highlight=False)


@inventory_app.command("resolve")
def inventory_resolve(json_out: JsonOpt = False) -> None:
    """Role members and merged settings per machine (the shape tools depend on)."""
    try:
        data = api.resolve_inventory()
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(data)
        return
    table = Table("instance", "role", "members")
    for iname, roles in data["members"].items():
        for rname, members in roles.items():
            table.add_row(iname, rname, ", ".join(members) or "-")
    console.print(table)
    for check in data["checks"]:
        err_console.print(f"[red]{check['severity']}:[/] [{check['id']}] {check['message']}", highlight=False)
    for warning in data["warnings"]:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)


@inventory_app.command("schema")
def inventory_schema() -> None:
    """The JSON Schema of the inventory (clan.toml / inventory.json)."""
    print_json(api.inventory_schema())
