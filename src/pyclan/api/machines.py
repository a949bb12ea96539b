"""API of the inventory's machines: list, create, delete, evaluated configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.api.writes import InventoryWrite
from pyclan.config.machine_config import MachineConfig


@dataclass(frozen=True)
class MachineDeploy:
    """Where the machine is deployed to (`deploy.targetHost`) and built (`deploy.buildHost`)."""

    targetHost: str | None = None
    buildHost: str | None = None
    forwardAgent: bool | None = None


@dataclass(frozen=True)
class MachineSummary:
    """One inventory machine; `tags` are its effective tags (own, tag lists, built-in)."""

    name: str
    machineClass: str
    tags: list[str]
    deploy: MachineDeploy
    description: str | None = None
    icon: str | None = None
    installedAt: int | None = None


@dataclass(frozen=True)
class CreatedMachine:
    """The machine added, and the inventory file that now holds it."""

    machine: str
    file: str


@dataclass(frozen=True)
class DeletedMachine:
    """The machine removed, and every file or entry removed with it."""

    machine: str
    removed: list[str] = field(default_factory=list)


@register
def list_machines(
    tags: list[str] | None = None, flake: str | None = None
) -> list[MachineSummary]:
    """Machines carrying every tag in `tags` (all machines without tags), with effective tags."""
    from pyclan.inventory.tags import effective_tags

    clan = open_flake(flake)
    inv = clan.loaded.inventory
    selected = clan.select_machines(tags=tags or [])
    eff = effective_tags(inv)
    out = []
    for name in selected:
        m = inv.machines[name]
        out.append(
            MachineSummary(
                name=m.name or name,
                machineClass=m.machineClass,
                tags=eff.get(name, []),
                deploy=MachineDeploy(m.deploy.targetHost, m.deploy.buildHost, m.deploy.forwardAgent),
                description=m.description,
                icon=m.icon,
                installedAt=m.installedAt,
            )
        )
    return out


@register
def create_machine(
    name: str,
    tags: list[str] | None = None,
    target_host: str | None = None,
    description: str | None = None,
    flake: str | None = None,
    expected_hash: str | None = None,
) -> CreatedMachine:
    """Add a machine to the inventory (clan.toml, comments kept; else inventory.json)."""
    from pyclan.inventory.write import create_machine as create

    clan = open_flake(flake)
    return CreatedMachine(machine=name, file=create(clan.dir, name, tags, target_host, description, expected_hash))


@register
def delete_machine(name: str, flake: str | None = None, expected_hash: str | None = None) -> DeletedMachine:
    """Remove a machine, its vars and its machine key; refused while a role still names it."""
    from pyclan.inventory.write import delete_machine as delete
    from pyclan.vars.layout import machine_owned

    clan = open_flake(flake)
    clan.require_machines([name])
    return DeletedMachine(machine=name, removed=list(delete(clan.dir, name, machine_owned(name), expected_hash)))


@register
def set_machine(
    name: str,
    description: str | None = None,
    tags: list[str] | None = None,
    target_host: str | None = None,
    machine_class: Literal["nixos", "darwin"] | None = None,
    icon: str | None = None,
    build_host: str | None = None,
    expected_hash: str | None = None,
    flake: str | None = None,
) -> InventoryWrite:
    """Change a machine's fields (None: unchanged; "" or [] removes the field)."""
    from pyclan.api.writes import clan_of, require_machines, write

    fields: list[tuple[tuple[str, ...], Any]] = [
        (("description",), description), (("tags",), tags), (("deploy", "targetHost"), target_host),
        (("machineClass",), machine_class), (("icon",), icon), (("deploy", "buildHost"), build_host),
    ]

    def change(plan: Any) -> None:
        require_machines(clan_of(plan), [name], "machines")
        for key, value in fields:
            path = ("machines", name, *key)
            if value in ("", []):
                plan.delete(path)
            elif value is not None:
                plan.set(path, list(value) if isinstance(value, list) else value)

    return write(flake, "machines set", change, expected_hash)


@register
def get_machine_config(
    machine: str, flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> MachineConfig:
    """A machine's complete evaluated configuration (secrets as references only)."""
    clan = open_flake(flake, input_overrides)
    clan.require_machines([machine])
    return clan.evaluator.config(machine)


@dataclass(frozen=True)
class TagSummary:
    """A tag: the machines carrying it, and the inventory `tags` list naming machines (None: none)."""

    name: str
    machines: list[str]
    listed: list[str] | None = None


@register
def list_tags(flake: str | None = None) -> list[TagSummary]:
    """Every tag a machine carries or `inventory.tags` defines (built-ins included), with its machines."""
    from pyclan.inventory.tags import machines_with_tag

    inv = open_flake(flake).loaded.inventory
    return [
        TagSummary(tag, sorted(members), list(inv.tags[tag]) if tag in inv.tags else None)
        for tag, members in sorted(machines_with_tag(inv).items())
    ]


@register
def set_tag(
    name: str, machines: list[str], expected_hash: str | None = None, flake: str | None = None
) -> InventoryWrite:
    """Set the inventory `tags.<name>` list (machines given the tag there; [] removes the list)."""
    from pyclan.api.writes import clan_of, require_machines, write

    def change(plan: Any) -> None:
        if not machines:
            plan.delete(("tags", name))
            return
        require_machines(clan_of(plan), machines, f"tags.{name}")
        plan.set(("tags", name), list(dict.fromkeys(machines)))

    return write(flake, "tags set", change, expected_hash)
