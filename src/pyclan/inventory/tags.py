"""Machine tags: the user's own plus the static `inventory.tags` lists (clan-semantics R1.5, R1.6, R4.2)."""

from __future__ import annotations

from pyclan.inventory.models import Inventory


def tag_lists(inv: Inventory) -> dict[str, list[str]]:
    """`inventory.tags` with the builtin tags filled in.

    `all`, `nixos` and `darwin` are computed from the machines and their `machineClass`, like
    Clan's `mkDefault` values: a list the user defines for one of them replaces the builtin.
    """
    lists = dict(inv.tags)
    if "all" not in lists:
        lists["all"] = list(inv.machines)
    for machine_class in ("nixos", "darwin"):
        if machine_class not in lists:
            lists[machine_class] = [n for n, m in inv.machines.items() if m.machineClass == machine_class]
    return lists


def effective_tags(inv: Inventory) -> dict[str, list[str]]:
    """R1.5: machine → its tags, then the sorted names of the tag lists naming it; duplicates
    removed, first occurrence kept. Example: tags ["zeta", "alpha", "zeta"] plus lists `b` and
    `static` → ["zeta", "alpha", "all", "b", "nixos", "static"]."""
    listed: dict[str, list[str]] = {name: [] for name in inv.machines}
    lists = tag_lists(inv)
    for tag in sorted(lists):
        for name in lists[tag]:
            found = listed.get(name)
            if found is not None:  # R4.2: only inventory machines
                found.append(tag)
    return {name: list(dict.fromkeys([*machine.tags, *listed[name]])) for name, machine in inv.machines.items()}


def machines_with_tag(inv: Inventory) -> dict[str, set[str]]:
    """Tag → the inventory machines carrying it (R4.2). Every tag list (including the builtins)
    is a key, even when it holds no inventory machine."""
    machines = inv.machines.keys()
    result: dict[str, set[str]] = {tag: machines & members for tag, members in tag_lists(inv).items()}
    for name, machine in inv.machines.items():
        for tag in machine.tags:
            found = result.get(tag)
            if found is None:
                result[tag] = {name}
            else:
                found.add(name)
    return result
