"""Writing the inventory: add and remove machines, keeping the user's file as it was written.

`clan.toml` is edited with tomlkit, so comments, order and formatting survive; `inventory.json`
(Clan's tool-written format) is rewritten with indent 2. Every change is checked by loading the
whole new inventory before anything is written; the file is then replaced atomically with the
mode it had, so a refused change leaves the clan exactly as it was. Both commands hold the
clan's write lock (`pyclan.lock`): two run at once never lose each other's change. `delete`
is all-or-nothing: what belongs to the machine is first moved aside (never through a symlink),
and put back if the inventory cannot be written.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomlkit

from pyclan import safepath
from pyclan.errors import ClanError, unknown_machine
from pyclan.inventory.load import CLAN_TOML, INVENTORY_JSON, load_inventory, parse_json, parse_toml
from pyclan.inventory.models import MACHINE_NAME_RE
from pyclan.lock import LOCAL_DIR, clan_lock

_KIND = "usage-error"


def _atomic_write(path: Path, text: str) -> None:
    """Replace `path` keeping its permission bits (a new file gets the umask's default)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_text(clan_dir: Path, file: str, change: Any) -> str:
    """Apply `change(document)` to one inventory file and return the new text (nothing written)."""
    path = clan_dir / file
    text = path.read_text() if path.exists() else ""
    if file == CLAN_TOML:
        parse_toml(text, file)  # a clear parse error before tomlkit sees it
        doc: Any = tomlkit.parse(text)
        change(doc)
        return tomlkit.dumps(doc)
    doc = parse_json(text, file) if text else {}
    change(doc)
    return json.dumps(doc, indent=2) + "\n"


def _validate(clan_dir: Path, planned: dict[str, str]) -> None:
    """Load the inventory as it would be after writing `planned` (file → text); raise if broken."""
    machines = clan_dir / "machines"
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp)
        for name in (CLAN_TOML, INVENTORY_JSON):
            if name in planned:
                (trial / name).write_text(planned[name])
            elif (clan_dir / name).exists():
                shutil.copy(clan_dir / name, trial / name)
        if safepath.is_dir(clan_dir, machines, kind=_KIND):
            (trial / "machines").mkdir()
            for entry in machines.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    (trial / "machines" / entry.name).mkdir()
        load_inventory(trial)  # raises with every problem the change would cause


def _edit(clan_dir: Path, file: str, change: Any) -> None:
    new_text = _new_text(clan_dir, file, change)
    _validate(clan_dir, {file: new_text})
    _atomic_write(clan_dir / file, new_text)


def _target_file(clan_dir: Path) -> str:
    return CLAN_TOML if (clan_dir / CLAN_TOML).exists() or not (clan_dir / INVENTORY_JSON).exists() else INVENTORY_JSON


def create_machine(
    clan_dir: Path,
    name: str,
    tags: list[str] | None = None,
    target_host: str | None = None,
    description: str | None = None,
    expected_hash: str | None = None,
) -> str:
    """Add `machines.<name>` (Clan's `machines create`); returns the file written."""
    with clan_lock(clan_dir, "pyclan machines create"):
        _require_unchanged(clan_dir, expected_hash)
        return _create(clan_dir, name, tags, target_host, description)


def _require_unchanged(clan_dir: Path, expected_hash: str | None) -> None:
    """Refuse a write based on a stale read (`pyclan.inventory.edit`'s content hash)."""
    if expected_hash is not None:
        from pyclan.inventory.edit import read_snapshot, require_unchanged

        require_unchanged(read_snapshot(clan_dir), expected_hash)


def _create(clan_dir: Path, name: str, tags: list[str] | None, target_host: str | None,
            description: str | None) -> str:
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


def delete_machine(clan_dir: Path, name: str, owned: Sequence[str] = (), expected_hash: str | None = None) -> list[str]:
    """Remove a machine, its `machines/<name>` folder and `owned` (what else belongs only to it:
    its vars and machine key, paths relative to the clan that the vars stage knows, see
    `pyclan.vars.layout.machine_owned`).

    Refused while an instance still names the machine, so no dangling reference is left.
    Returns the paths removed, relative to the clan directory.
    """
    with clan_lock(clan_dir, "pyclan machines delete"):
        _require_unchanged(clan_dir, expected_hash)
        return _delete(clan_dir, name, owned)


def _delete(clan_dir: Path, name: str, owned_elsewhere: Sequence[str]) -> list[str]:
    loaded = load_inventory(clan_dir)
    inv = loaded.inventory
    if name not in inv.machines:
        raise ClanError(unknown_machine(name, inv.machines))
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
    planned: dict[str, str] = {}
    removed: list[str] = []
    for file in (CLAN_TOML, INVENTORY_JSON):
        path = clan_dir / file
        if not path.exists():
            continue
        raw = parse_toml(path.read_text(), file) if file == CLAN_TOML else parse_json(path.read_text(), file)
        if name in (raw.get("machines") or {}):

            def drop(doc: Any) -> None:
                del doc["machines"][name]

            planned[file] = _new_text(clan_dir, file, drop)
            removed.append(f"{file}: machines.{name}")
    _validate(clan_dir, planned)
    # refuse before changing anything: a symlink on the way would make rmtree act outside the clan
    owned = [rel for rel in (*owned_elsewhere, f"machines/{name}")
             if os.path.lexists(safepath.check(clan_dir, clan_dir / rel, kind=_KIND))]
    trash = clan_dir / LOCAL_DIR / f"deleted-{name}-{secrets.token_hex(6)}"
    moved: list[tuple[Path, Path]] = []
    originals = {file: (clan_dir / file).read_text() for file in planned}
    written: list[str] = []
    try:
        safepath.make_dirs(clan_dir, trash, 0o700, kind=_KIND)
        for i, rel in enumerate(owned):
            aside = trash / str(i)
            os.rename(clan_dir / rel, aside)
            moved.append((aside, clan_dir / rel))
        for file, text in planned.items():
            _atomic_write(clan_dir / file, text)
            written.append(file)
    except BaseException as exc:
        for file in written:
            _atomic_write(clan_dir / file, originals[file])
        for aside, original in reversed(moved):
            os.rename(aside, original)
        shutil.rmtree(trash, ignore_errors=True)
        if isinstance(exc, OSError):
            raise safepath.os_error(clan_dir, clan_dir / (owned[len(moved)] if len(moved) < len(owned) else ""),
                                    exc, f"delete machine '{name}'", kind=_KIND) from None
        raise
    shutil.rmtree(trash, ignore_errors=True)
    return removed + owned
