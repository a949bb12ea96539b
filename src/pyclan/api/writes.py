"""How every inventory write runs: lock, read, compare the hash, plan, validate, commit.

A write is a function that changes a `Plan` (the parsed files in memory). It is validated by
`pyclan check`'s stages — load every file, resolve every instance, merge every member's settings,
evaluate and build every machine — and refused with those problems if it adds any (failed
constraints excepted: an instance is built one write at a time); only then are the files
replaced. A refused write changes nothing, byte for byte. The clan's lock is held from the read
to the rename, and `expected_hash` (from `get_inventory_state` or an earlier write's result)
refuses a write based on a stale read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyclan.errors import ClanError, Problem

CONSTRAINT_PREFIX = "Inventory checks failed:"  # how check reports a failed constraint


@dataclass(frozen=True)
class InventoryState:
    """A content hash of the inventory files a write would be based on, and those files."""

    hash: str
    files: list[str]


@dataclass(frozen=True)
class InventoryWrite:
    """What a write changed: the files written, each change, and the inventory's new hash."""

    hash: str
    files: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    changed: bool = True


def clan_dir_of(flake: str | None) -> Path:
    from pyclan.inventory.load import find_clan_dir

    return find_clan_dir(Path(flake) if flake else None)


def state(flake: str | None) -> InventoryState:
    from pyclan.inventory.edit import read_snapshot

    snapshot = read_snapshot(clan_dir_of(flake))
    return InventoryState(snapshot.hash, snapshot.files)


def problems_of(
    clan_dir: Path,
    texts: dict[str, str],
    machine_dirs: list[str],
    input_overrides: dict[str, str] | None,
    blocks: list[tuple[str, str, str, Any, str]] | None = None,
) -> list[Problem]:
    """Every problem `pyclan check` finds in the inventory these texts make, but failed constraints.

    Constraints (a role needs a member, …) are left out: an instance is built one write at a time.
    `blocks` are (instance, role, settings path, value, file) of blocks just written: each is also
    checked on its own against its role's interface, so a value no member evaluates yet (a tag
    nobody carries) is still validated, and a bad value is reported at the path it was written to.
    """
    from pyclan.check import run_check
    from pyclan.clan import Clan
    from pyclan.inventory.load import CLAN_TOML, load_inventory_data, parse_json, parse_toml

    try:
        sources = [
            (name, parse_toml(text, name) if name == CLAN_TOML else parse_json(text, name))
            for name, text in texts.items()
        ]
        loaded = load_inventory_data(sources, machine_dirs=machine_dirs, clan_dir=clan_dir)
        overrides = {n: Path(p).resolve() for n, p in (input_overrides or {}).items()}
        report = run_check(Clan(dir=clan_dir, loaded=loaded, input_overrides=overrides))
    except ClanError as err:  # a file that does not load, an input that cannot be opened
        return err.problems
    problems = [p for p in report.problems if not p.message.startswith(CONSTRAINT_PREFIX)]
    own = _block_problems(report.resolved, blocks or [])
    if own:  # reported at the path written, instead of once per member it reaches
        written = {block[2] for block in blocks or []}
        problems = [q for q in problems if not any(w in q.message or q.path.startswith(w) for w in written)]
        problems = own + problems
    return problems


def _block_problems(resolved: Any, blocks: list[tuple[str, str, str, Any, str]]) -> list[Problem]:
    from pyclan.settings.merge import SettingsDef, merge_settings

    out: list[Problem] = []
    for instance, role, text, block, file in blocks:
        inst = resolved.instances.get(instance)
        if inst is None or role not in inst.roles or not isinstance(block, dict):
            continue
        _model, errs = merge_settings(inst.roles[role].interface, [SettingsDef(block, text, file)], text, file)
        out.extend(p for p in errs if p.kind != "missing-setting")
    return out


def _key(p: Problem) -> tuple[str, str, str]:
    return (p.kind, p.path, p.message)


def write(
    flake: str | None,
    what: str,
    change: Callable[[Any], None],
    expected_hash: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> InventoryWrite:
    """Run one write: `change(plan)` edits the plan (or raises a ClanError); see the module docstring."""
    from pyclan.inventory.edit import Plan, commit, read_snapshot, require_unchanged
    from pyclan.lock import clan_lock

    clan_dir = clan_dir_of(flake)
    with clan_lock(clan_dir, f"pyclan {what}"):  # excludes other processes and threads alike
        snapshot = read_snapshot(clan_dir)
        require_unchanged(snapshot, expected_hash)
        plan = Plan(snapshot)
        change(plan)
        texts = plan.texts()
        if not texts:
            return InventoryWrite(snapshot.hash, [], [], changed=False)
        after = {name: texts.get(name, snapshot.texts.get(name, "")) for name in plan.present()}
        from pyclan.inventory.sources import format_path

        blocks = [(i, r, format_path(p), plan.get(p), plan.landing(p)) for i, r, p in plan.blocks]
        new = problems_of(clan_dir, after, snapshot.machine_dirs, input_overrides, blocks)
        if new:
            before = {_key(p) for p in problems_of(clan_dir, dict(snapshot.texts), snapshot.machine_dirs,
                                                    input_overrides)}
            added = [p for p in new if _key(p) not in before]
            if added:
                raise ClanError(list(dict.fromkeys(added)))
        commit(clan_dir, texts)
        from pyclan.inventory.edit import Snapshot

        written = Snapshot(clan_dir, {**snapshot.texts, **texts}, snapshot.machine_dirs)
        return InventoryWrite(written.hash, sorted(texts), plan.changes)


def clan_of(plan: Any, input_overrides: dict[str, str] | None = None) -> Any:
    """The clan as the plan's snapshot holds it (loaded from the texts read under the lock)."""
    from pyclan.clan import Clan
    from pyclan.inventory.load import load_inventory_data

    snapshot = plan.snapshot
    sources = [(name, snapshot.data(name)) for name in snapshot.files]
    loaded = load_inventory_data(sources, machine_dirs=snapshot.machine_dirs, clan_dir=snapshot.clan_dir)
    overrides = {n: Path(p).resolve() for n, p in (input_overrides or {}).items()}
    return Clan(dir=snapshot.clan_dir, loaded=loaded, input_overrides=overrides)


def require_instance(clan: Any, name: str) -> Any:
    """The inventory entry of instance `name`, or the 'no such instance' problem with a hint."""
    from pyclan.errors import did_you_mean

    instances = clan.loaded.inventory.instances
    if name not in instances:
        raise ClanError.single(
            "unknown-instance", f"instances.{name}", f"no instance named '{name}' in the inventory",
            hint=did_you_mean(name, instances) or f"known instances: {', '.join(sorted(instances)) or 'none'}",
        )
    return instances[name]


def require_role(clan: Any, instance: str, role: str) -> Any:
    """The service `Role` of `instance`'s module named `role`, or an unknown-role problem."""
    from pyclan.errors import did_you_mean

    entry = require_instance(clan, instance)
    service = clan.registry.resolve(entry.module_name(instance), entry.module.input, f"instances.{instance}")
    if role not in service.roles:
        raise ClanError.single(
            "unknown-role", f"instances.{instance}.roles.{role}",
            f"the module '{service.name}' of instance '{instance}' has no role '{role}'",
            hint=did_you_mean(role, service.roles) or f"its roles: {', '.join(sorted(service.roles))}",
        )
    return service.roles[role]


def require_machines(clan: Any, names: list[str], where: str) -> None:
    from pyclan.errors import did_you_mean

    known = clan.loaded.inventory.machines
    problems = [
        Problem("unknown-machine", f"{where}.{m}", f"machine '{m}' is not defined in `machines`",
                hint=did_you_mean(m, known) or f"known machines: {', '.join(sorted(known)) or 'none'}")
        for m in dict.fromkeys(names) if m not in known
    ]
    if problems:
        raise ClanError(problems)


def require_tags(clan: Any, names: list[str], where: str) -> None:
    """Tags must be carried by a machine (own tags, `tags` lists, built-in all/nixos/darwin)."""
    from pyclan.errors import did_you_mean
    from pyclan.inventory.tags import effective_tags, tag_lists

    inv = clan.loaded.inventory
    carried = {t for ts in effective_tags(inv).values() for t in ts} | set(inv.tags) | set(tag_lists(inv))
    problems = [
        Problem("unknown-tag", f"{where}.{t}", f"no machine carries the tag '{t}'",
                hint=did_you_mean(t, carried) or f"known tags: {', '.join(sorted(carried)) or 'none'}; "
                "give a machine the tag first (`pyclan machines set NAME --tags …`)")
        for t in dict.fromkeys(names) if t not in carried
    ]
    if problems:
        raise ClanError(problems)
