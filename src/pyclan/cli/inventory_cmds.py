"""Inventory-level commands: init, show, check, machines list/create/delete/config, services, inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pyclan.cli.common import (
    FlakeOpt,
    JsonOpt,
    TagsOpt,
    clan_args,
    console,
    emit,
    flake,
    print_checks,
    print_problems,
    print_warnings,
    say,
)
from pyclan.lock import set_default_wait

machines_app = typer.Typer(help="Machines of the clan: list, configuration, build and deploy.", no_args_is_help=True)
services_app = typer.Typer(help="Service modules available to this clan.", no_args_is_help=True)
inventory_app = typer.Typer(help="The inventory as data, for tools.", no_args_is_help=True)

NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another command is changing the clan.")]



def init_cmd(
    directory: Annotated[Path, typer.Argument(help="Where to create the clan.")] = Path("."),
    name: Annotated[str | None, typer.Option(help="The clan's name (default: the folder's name).")] = None,
    domain: Annotated[str, typer.Option(help="The clan's domain.")] = "clan",
    json_out: JsonOpt = False,
) -> None:
    """Create a working starter clan (clan.toml, a self-defined service, .gitignore)."""
    from pyclan.api.clan import init_clan

    created = init_clan(str(directory), name=name, domain=domain)
    if emit(created, json_out):
        return
    console().print(f"Created clan [bold]{created.name}[/] in {created.path}")
    console().print(f"Next: [bold]pyclan -C {directory} machines list[/], then [bold]pyclan -C {directory} check[/]")


def show_cmd(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """Print the clan's name, description and domain."""
    from pyclan.api.clan import get_clan_details

    meta = get_clan_details(flake(flake_dir))
    if emit(meta, json_out):
        return
    say(f"Name: {meta.name}")
    say(f"Description: {meta.description or '-'}")
    say(f"Domain: {meta.domain}")


def check_cmd(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """Load, resolve and evaluate everything; report every problem and failed constraint."""
    from pyclan.api.clan import check_clan

    report = check_clan(**clan_args(flake_dir))
    if not emit(report, json_out):
        print_warnings(report.warnings)
        if report.errors:  # failed constraints are among them
            print_problems(report.errors, False)
        else:
            print_checks(report.checks)
        if report.ok:
            say(f"ok: {report.machines} machine(s), {report.instances} instance(s)")
    if not report.ok:
        raise typer.Exit(1)


@machines_app.command("list")
def machines_list(tags: TagsOpt = None, json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """List the inventory's machines."""
    from pyclan.api.machines import list_machines

    machines = list_machines(tags or [], flake=flake(flake_dir))
    if emit(machines, json_out):
        return
    from rich.table import Table

    table = Table("machine", "class", "tags", "target host", "description")
    for m in machines:
        table.add_row(m.name, m.machineClass, ", ".join(m.tags), m.deploy.targetHost or "-", m.description or "")
    console().print(table)


@machines_app.command("create")
def machines_create(
    name: Annotated[str, typer.Argument(help="The new machine's name.")],
    tags: TagsOpt = None,
    target_host: Annotated[str | None, typer.Option("--target-host", help="deploy.targetHost")] = None,
    description: Annotated[str | None, typer.Option("--description", help="A description.")] = None,
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Add a machine to the inventory (clan.toml keeps its comments and layout)."""
    set_default_wait(not no_wait)
    from pyclan.api.machines import create_machine

    result = create_machine(name, tags, target_host, description, flake=flake(flake_dir))
    if not emit(result, json_out):
        say(f"added machine {name} to {result.file}")


@machines_app.command("set")
def machines_set(
    name: Annotated[str, typer.Argument(help="The machine.")],
    description: Annotated[str | None, typer.Option("--description", help="description (\"\": remove)")] = None,
    tags: TagsOpt = None,
    no_tags: Annotated[bool, typer.Option("--no-tags", help="Remove the machine's own tags.")] = False,
    target_host: Annotated[str | None, typer.Option("--target-host", help="deploy.targetHost (\"\": remove)")] = None,
    build_host: Annotated[str | None, typer.Option("--build-host", help="deploy.buildHost (\"\": remove)")] = None,
    machine_class: Annotated[str | None, typer.Option("--machine-class", help="machineClass: nixos or darwin")] = None,
    icon: Annotated[str | None, typer.Option("--icon", help="icon (\"\": remove)")] = None,
    expected_hash: Annotated[str | None, typer.Option("--expected-hash", help="Refuse unless the inventory still "
                                                      "has this hash.")] = None,
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Change a machine's description, tags, target host, class or icon (validated first)."""
    set_default_wait(not no_wait)
    from pyclan.api.machines import set_machine

    result = set_machine(name, description, [] if no_tags else tags, target_host, machine_class,  # type: ignore[arg-type]
                         icon, build_host, expected_hash, flake=flake(flake_dir))
    if not emit(result, json_out):
        say("\n".join(result.changes) or "nothing to change")


@machines_app.command("delete")
def machines_delete(
    name: Annotated[str, typer.Argument(help="The machine to remove.")],
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Remove a machine, its vars and its machine key (refused while a role names it)."""
    set_default_wait(not no_wait)
    from pyclan.api.machines import delete_machine

    result = delete_machine(name, flake=flake(flake_dir))
    if not emit(result, json_out):
        say(f"removed machine {name}: " + ", ".join(result.removed))


@machines_app.command("config")
def machines_config(
    machine: Annotated[str, typer.Argument(help="The machine.")],
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Show a machine's complete evaluated configuration (secrets as references only)."""
    from pyclan.api.machines import get_machine_config

    config = get_machine_config(machine, **clan_args(flake_dir))
    if not emit(config, json_out):
        _print_config(machine, config.model_dump(mode="json"))


def _print_config(machine: str, config: dict[str, Any]) -> None:
    from rich.table import Table

    out = console()
    out.rule(f"[bold]{machine}")
    if config["packages"]:
        out.print("[bold]packages:[/] " + ", ".join(config["packages"]), highlight=False)
    for title, key, cols in (
        ("users", "users", ("name", "groups", "shell")),
        ("groups", "groups", ("name", "members")),
    ):
        if config[key]:
            table = Table(*cols, title=title, title_justify="left")
            for item in config[key].values():
                table.add_row(*(_cell(item.get(c)) for c in cols))
            out.print(table)
    if config["units"]:
        table = Table("unit", "enabled", "restart on", title="systemd units", title_justify="left")
        for u in config["units"].values():
            table.add_row(u["name"], str(u["enabled"]), _cell(u["restart_on"]))
        out.print(table)
    if config["secrets"]:
        table = Table("path", "var", "owner", "mode", title="secrets (placed at deploy)", title_justify="left")
        for s in config["secrets"].values():
            table.add_row(s["path"], f"{s['generator']}/{s['file']}", f"{s['owner']}:{s['group']}", s["mode"])
        out.print(table)
    if config["hooks"]:
        out.print("[bold]activation hooks:[/] " + ", ".join(config["hooks"]), highlight=False)
    for f in config["files"].values():
        out.print(f"[bold cyan]{f['path']}[/] ({f['mode']} {f['owner']}:{f['group']})", highlight=False)
        out.print(f["content"], markup=False, highlight=False, end="" if f["content"].endswith("\n") else "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


@services_app.command("list")
def services_list(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """List every service module this clan can use, and where it comes from."""
    from pyclan.api.services import list_service_modules

    services = list_service_modules(**clan_args(flake_dir))
    if emit(services, json_out):
        return
    from rich.table import Table

    table = Table("service", "input", "roles", "description", "from")
    for s in services:
        table.add_row(s.name, s.input or "(bundled)", ", ".join(s.roles), s.description, s.origin)
    console().print(table)


@services_app.command("show")
def services_show(
    name: Annotated[str, typer.Argument(help="The service module's name.")],
    input_name: Annotated[
        str | None, typer.Option("--input", help="The input providing it (default: bundled).")
    ] = None,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Show a service's manifest, roles and each role's settings JSON Schema."""
    from pyclan.api.services import get_service_module

    info = get_service_module(name, input_name, **clan_args(flake_dir))
    if emit(info, json_out):
        return
    out = console()
    m = info.manifest
    out.print(f"[bold]{m['name']}[/]: {m['description']}", highlight=False)
    out.print(f"categories: {', '.join(m['categories'])}", highlight=False)
    for rname, role in info.roles.items():
        out.rule(f"role {rname}")
        out.print(role.description or "(no description)", highlight=False)
        out.print_json(data=role.schema)
    if m["readme"]:
        out.rule("readme")
        out.print(m["readme"], markup=False, highlight=False)


@inventory_app.command("resolve")
def inventory_resolve(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """Role members and merged settings per machine (the shape tools depend on)."""
    from pyclan.api.inventory import resolve_inventory

    data = resolve_inventory(**clan_args(flake_dir))
    if emit(data, json_out):
        return
    from rich.table import Table

    table = Table("instance", "role", "members")
    for iname, roles in data["members"].items():
        for rname, members in roles.items():
            table.add_row(iname, rname, ", ".join(members) or "-")
    console().print(table)
    print_checks(data["checks"])
    print_warnings(data["warnings"])


@inventory_app.command("state")
def inventory_state(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """The inventory files' content hash (for `--expected-hash` of the write commands)."""
    from pyclan.api.inventory import get_inventory_state

    state = get_inventory_state(flake(flake_dir))
    if not emit(state, json_out):
        say(f"{state.hash}  {' '.join(state.files)}")


@inventory_app.command("schema")
def inventory_schema(json_out: JsonOpt = True) -> None:
    """The JSON Schema of the inventory (clan.toml / inventory.json); always JSON."""
    from pyclan.api.inventory import inventory_schema as schema

    emit(schema(), True)
