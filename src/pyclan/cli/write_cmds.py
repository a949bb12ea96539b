"""Inventory writes: `instances …`, `settings …` and `meta set` (thin over pyclan.api.instances/settings).

Each verb calls one API function under the clan's lock; `--json` prints that function's result.
"""

from __future__ import annotations

import json
import tomllib
from typing import Annotated, Any

import typer

from pyclan.cli.common import FlakeOpt, JsonOpt, clan_args, console, emit, flake, say
from pyclan.lock import set_default_wait

instances_app = typer.Typer(help="Service instances: list, show, create, delete, members.", no_args_is_help=True)
settings_app = typer.Typer(help="Settings of an instance's roles, machines and tags.", no_args_is_help=True)
tags_app = typer.Typer(help="Tags: list them, set an inventory tag list.", no_args_is_help=True)
meta_app = typer.Typer(help="The clan's meta: name, description, domain.", no_args_is_help=True)

NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another command is changing the clan.")]
HashOpt = Annotated[
    str | None, typer.Option("--expected-hash", help="Refuse unless the inventory still has this hash (api state).")
]
MachineOpt = Annotated[str | None, typer.Option("--machine", help="The machine's own settings block.")]
TagOpt = Annotated[str | None, typer.Option("--tag", help="The settings block of a tag.")]
MachinesOpt = Annotated[list[str] | None, typer.Option("--machine", help="A machine (repeatable).")]
TagsOpt = Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")]
InstanceArg = Annotated[str, typer.Argument(help="The instance.")]
RoleArg = Annotated[str, typer.Argument(help="The role.")]


def parse_value(text: str) -> Any:
    """A VALUE on the command line: JSON, else a TOML literal, else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _report(result: Any, json_out: bool) -> None:
    if emit(result, json_out):
        return
    if not result.changed:
        say("nothing to change")
    for line in result.changes:
        say(line)


@instances_app.command("list")
def instances_list(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """List the inventory's service instances, their modules and each role's machines and tags."""
    from pyclan.api.instances import list_instances

    instances = list_instances(flake(flake_dir))
    if emit(instances, json_out):
        return
    from rich.table import Table

    table = Table("instance", "module", "role", "machines", "tags")
    for inst in instances:
        module = inst.module.name + (f" ({inst.module.input})" if inst.module.input else "")
        for rname, role in inst.roles.items() or {"-": None}.items():
            table.add_row(inst.name, module, rname, ", ".join(role.machines) if role else "",
                          ", ".join(role.tags) if role else "")
    console().print(table)


@instances_app.command("show")
def instances_show(name: InstanceArg, json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """Show an instance: per role its members, settings and settings JSON Schema."""
    from pyclan.api.instances import show_instance

    info = show_instance(name, **clan_args(flake_dir))
    if emit(info, json_out):
        return
    out = console()
    out.print(f"[bold]{info.name}[/]: module {info.module.name}"
              + (f" from {info.module.input}" if info.module.input else "") + f" ({', '.join(info.files)})",
              highlight=False)
    if info.error:
        out.print(f"[red]error:[/] {info.error}", highlight=False, markup=False)
    for rname, role in info.roles.items():
        out.rule(f"role {rname}")
        say(f"machines: {', '.join(role.machines) or '-'}; tags: {', '.join(role.tags) or '-'}; "
            f"members: {', '.join(role.members) or '-'}")
        if role.settings:
            say("settings: " + json.dumps(role.settings))
        for m, block in role.machineSettings.items():
            say(f"machines.{m}.settings: " + json.dumps(block))
        for t, block in role.tagSettings.items():
            say(f"tags.{t}.settings: " + json.dumps(block))


@instances_app.command("create")
def instances_create(
    name: Annotated[str, typer.Argument(help="The new instance's name.")],
    module: Annotated[str, typer.Option("--module", help="The service module.")],
    input_name: Annotated[str | None, typer.Option("--input", help="The input providing it.")] = None,
    expected_hash: HashOpt = None,
    no_wait: NoWaitOpt = False,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Add a service instance (any number per module)."""
    set_default_wait(not no_wait)
    from pyclan.api.instances import create_instance

    _report(create_instance(name, module, input_name, expected_hash, **clan_args(flake_dir)), json_out)


@instances_app.command("delete")
def instances_delete(
    name: InstanceArg, expected_hash: HashOpt = None, no_wait: NoWaitOpt = False, json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Remove a service instance from the inventory."""
    set_default_wait(not no_wait)
    from pyclan.api.instances import delete_instance

    _report(delete_instance(name, expected_hash, **clan_args(flake_dir)), json_out)


@instances_app.command("add-member")
def instances_add_member(
    instance: InstanceArg, role: RoleArg, machines: MachinesOpt = None, tags: TagsOpt = None,
    expected_hash: HashOpt = None, no_wait: NoWaitOpt = False, json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Add machines (--machine M) and tags (--tag T) to a role."""
    set_default_wait(not no_wait)
    from pyclan.api.instances import add_member

    _report(add_member(instance, role, machines or [], tags or [], expected_hash, **clan_args(flake_dir)), json_out)


@instances_app.command("remove-member")
def instances_remove_member(
    instance: InstanceArg, role: RoleArg, machines: MachinesOpt = None, tags: TagsOpt = None,
    expected_hash: HashOpt = None, no_wait: NoWaitOpt = False, json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Remove machines (--machine M) and tags (--tag T) from a role."""
    set_default_wait(not no_wait)
    from pyclan.api.instances import remove_member

    _report(remove_member(instance, role, machines or [], tags or [], expected_hash, **clan_args(flake_dir)),
            json_out)


@settings_app.command("get")
def settings_get(
    instance: InstanceArg, role: RoleArg,
    path: Annotated[str | None, typer.Argument(help="The setting (dotted; none: the whole block).")] = None,
    machine: MachineOpt = None, tag: TagOpt = None, json_out: JsonOpt = False, flake_dir: FlakeOpt = None,
) -> None:
    """Print a setting as defined in its block, and its effective value."""
    from pyclan.api.settings import get_setting

    value = get_setting(instance, role, machine, tag, path, **clan_args(flake_dir))
    if emit(value, json_out):
        return
    where = f" ({value.file})" if value.file else ""
    say(f"{value.block}{'.' + '.'.join(value.path) if value.path else ''}{where}: "
        + (json.dumps(value.value) if value.defined else "(not defined)"))
    if value.effective is not None:
        say(f"effective: {json.dumps(value.effective)}")


@settings_app.command("set")
def settings_set(
    instance: InstanceArg, role: RoleArg,
    path: Annotated[str, typer.Argument(help="The setting (dotted, TOML key syntax).")],
    value: Annotated[str, typer.Argument(help="The value: JSON, else a TOML literal, else a string.")],
    machine: MachineOpt = None, tag: TagOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Write it as mkForce (priority 50).")] = False,
    default: Annotated[bool, typer.Option("--default", help="Write it as mkDefault (priority 1000).")] = False,
    expected_hash: HashOpt = None, no_wait: NoWaitOpt = False, json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Set a setting of a role (or --machine M / --tag T); validated before anything is written."""
    set_default_wait(not no_wait)
    from pyclan.api.settings import set_setting

    _report(set_setting(instance, role, path, parse_value(value), machine, tag, force, default, expected_hash,
                        **clan_args(flake_dir)), json_out)


@settings_app.command("unset")
def settings_unset(
    instance: InstanceArg, role: RoleArg,
    path: Annotated[str | None, typer.Argument(help="The setting (none: the whole block).")] = None,
    machine: MachineOpt = None, tag: TagOpt = None,
    expected_hash: HashOpt = None, no_wait: NoWaitOpt = False, json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Remove a setting (or the whole block) of a role, machine or tag."""
    set_default_wait(not no_wait)
    from pyclan.api.settings import unset_setting

    _report(unset_setting(instance, role, path, machine, tag, expected_hash, **clan_args(flake_dir)), json_out)


@meta_app.command("set")
def meta_set(
    name: Annotated[str | None, typer.Option("--name", help="meta.name")] = None,
    description: Annotated[str | None, typer.Option("--description", help="meta.description (\"\": remove)")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="meta.domain (\"\": remove)")] = None,
    icon: Annotated[str | None, typer.Option("--icon", help="meta.icon (\"\": remove)")] = None,
    expected_hash: HashOpt = None, no_wait: NoWaitOpt = False, json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Change the clan's name, description, domain or icon."""
    set_default_wait(not no_wait)
    from pyclan.api.clan import set_meta

    _report(set_meta(name, description, domain, icon, expected_hash, flake(flake_dir)), json_out)


@meta_app.command("show")
def meta_show(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """Print the clan's meta (like `pyclan show`)."""
    from pyclan.api.clan import get_clan_details

    meta = get_clan_details(flake(flake_dir))
    if not emit(meta, json_out):
        say(f"Name: {meta.name}\nDescription: {meta.description or '-'}\nDomain: {meta.domain}")


@tags_app.command("list")
def tags_list(json_out: JsonOpt = False, flake_dir: FlakeOpt = None) -> None:
    """List every tag and the machines carrying it."""
    from pyclan.api.machines import list_tags

    tags = list_tags(flake(flake_dir))
    if not emit(tags, json_out):
        for tag in tags:
            say(f"{tag.name}: {', '.join(tag.machines) or '-'}")


@tags_app.command("set")
def tags_set(
    name: Annotated[str, typer.Argument(help="The tag.")],
    machines: MachinesOpt = None,
    expected_hash: HashOpt = None, no_wait: NoWaitOpt = False, json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Set the inventory's list of machines with this tag (no --machine: remove the list)."""
    set_default_wait(not no_wait)
    from pyclan.api.machines import set_tag

    _report(set_tag(name, machines or [], expected_hash, flake(flake_dir)), json_out)
