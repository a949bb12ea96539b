"""Writing the inventory: add and remove machines, keeping the user's file as it was written.

`clan.toml` is edited with tomlkit, so comments, order and formatting survive; `inventory.json`
(Clan's tool-written format) is rewritten with indent 2. Every change is checked by loading the
whole new inventory before anything is written; the file is then replaced atomically, so a
refused change leaves the clan exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tomlkit

from pyclan.errors import ClanError
from pyclan.inventory.load import CLAN_TOML, INVENTORY_JSON, load_inventory, parse_json, parse_toml
from pyclan.inventory.models import MACHINE_NAME_RE


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _edit(clan_dir: Path, file: str, change: Any) -> None:
    """Apply `change(document)` to one inventory file, validate the result, then write it."""
    path = clan_dir / file
    text = path.read_text() if path.exists() else ""
    if file == CLAN_TOML:
        parse_toml(text, file)  # a clear parse error before tomlkit sees it
        doc: Any = tomlkit.parse(text)
        change(doc)
        new_text = tomlkit.dumps(doc)
    else:
        doc = parse_json(text, file) if text else {}
        change(doc)
        new_text = json.dumps(doc, indent=2) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp)
        for name in (CLAN_TOML, INVENTORY_JSON):
            if (clan_dir / name).exists():
                shutil.copy(clan_dir / name, trial / name)
        (trial / file).write_text(new_text)
        if (clan_dir / "machines").is_dir():
            (trial / "machines").mkdir()
            for entry in (clan_dir / "machines").iterdir():
                if entry.is_dir():
                    (trial / "machines" / entry.name).mkdir()
        load_inventory(trial)  # raises with every problem the change would cause
    _atomic_write(path, new_text)


def _target_file(clan_dir: Path) -> str:
    return CLAN_TOML if (clan_dir / CLAN_TOML).exists() or not (clan_dir / INVENTORY_JSON).exists() else INVENTORY_JSON


def create_machine(
    clan_dir: Path,
    name: str,
    tags: list[str] | None = None,
    target_host: str | None = None,
    description: str | None = None,
) -> str:
    """Add `machines.<name>` (Clan's `machines create`); returns the file written."""
    if not MACHINE_NAME_RE.match(name) or len(name) > 63:
        raise ClanError.single(
            "inventory-type", f"machines.{name}", f"invalid machine name {name!r}",
            hint="use letters, digits and '-' (not first or last), at most 63 characters",
        )
    inv = load_inventory(clan_dir).inventory
    if name in inv.machines:
        raise ClanError.single("usage-error", f"machines.{name}", f"machine '{name}' already exists")
    entry: dict[str, Any] = {}
    if description:
        entry["description"] = description
    if tags:
        entry["tags"] = list(tags)
    if target_host:
        entry["deploy"] = {"targetHost": target_host}
    file = _target_file(clan_dir)

    def add(doc: Any) -> None:
        if file == CLAN_TOML:
            machines = doc.get("machines")
            if machines is None:
                machines = tomlkit.table(is_super_table=True)
                doc["machines"] = machines
            table = tomlkit.table()
            for key, value in entry.items():
                if isinstance(value, dict):
                    inline = tomlkit.inline_table()
                    inline.update(value)
                    table[key] = inline
                else:
                    table[key] = value
            table.add(tomlkit.nl())
            machines[name] = table
        else:
            doc.setdefault("machines", {})[name] = entry

    _edit(clan_dir, file, add)
    return file


def delete_machine(clan_dir: Path, name: str) -> list[str]:
    """Remove a machine and what belongs only to it (its vars and machine key).

    Refused while an instance still names the machine, so no dangling reference is left.
    Returns the paths removed, relative to the clan directory.
    """
    loaded = load_inventory(clan_dir)
    inv = loaded.inventory
    if name not in inv.machines:
        raise ClanError.single("unknown-machine", f"machines.{name}", f"no machine named '{name}'")
    users = [
        f"instances.{i}.roles.{r}.machines.{name}"
        for i, inst in sorted(inv.instances.items())
        for r, role in sorted(inst.roles.items())
        if name in role.machines
    ]
    if users:
        raise ClanError.single(
            "usage-error", f"machines.{name}", f"machine '{name}' is still used by: {', '.join(users)}",
            hint="remove it from those roles first",
        )
    removed: list[str] = []
    for file in (CLAN_TOML, INVENTORY_JSON):
        path = clan_dir / file
        if not path.exists():
            continue
        raw = parse_toml(path.read_text(), file) if file == CLAN_TOML else parse_json(path.read_text(), file)
        if name in (raw.get("machines") or {}):

            def drop(doc: Any) -> None:
                del doc["machines"][name]

            _edit(clan_dir, file, drop)
            removed.append(f"{file}: machines.{name}")
    for rel in (f"vars/per-machine/{name}", f"keys/machines/{name}.pub", f"machines/{name}"):
        target = clan_dir / rel
        if target.is_dir():
            shutil.rmtree(target)
            removed.append(rel)
        elif target.exists():
            target.unlink()
            removed.append(rel)
    return removed
