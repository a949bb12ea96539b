"""Editing the inventory files in place: where a write lands, how it is rendered, how it is committed.

A write is planned on the parsed data of every inventory file (`Plan`), so it can be validated
before anything touches the disk. Where it lands (README, "Writing the inventory"):

- a value already defined in a file is edited in that file (a value several files define, such as
  a list both extend, is written to the first and removed from the others);
- a new value goes to the file that defines its deepest existing parent (a new setting of an
  instance written in clan.toml goes to clan.toml; a new `meta` field goes where `meta` is),
  clan.toml before inventory.json on a tie;
- an entirely new entry (a new instance or machine) goes to the clan's file for tools: clan.toml
  if the clan has one (or has no inventory.json yet), else inventory.json — where `machines create`
  puts new machines.

clan.toml is edited through tomlkit (comments, order and formatting stay) and every edit is
checked by parsing the result again: if tomlkit would render something else than planned, the
write is refused instead of written. inventory.json keeps its key order and indentation. All
files of one write are replaced together (temporary files, fsync, rename), never through a
symlink; if one rename fails the others are put back.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import secrets
import stat
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from pyclan import safepath
from pyclan.errors import ClanError
from pyclan.inventory.load import CLAN_TOML, INVENTORY_JSON, MACHINES_DIR, parse_json, parse_toml
from pyclan.inventory.sources import format_path

Path_ = tuple[str, ...]
FILES = (CLAN_TOML, INVENTORY_JSON)
KIND = "usage-error"
CHANGED_KIND = "inventory-changed"


# ---------------------------------------------------------------------------------------------
# what a write is based on


@dataclass
class Snapshot:
    """The inventory files as read (text per present file, `machines/` folder names), and their hash."""

    clan_dir: Path
    texts: dict[str, str]
    machine_dirs: list[str]
    _data: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def hash(self) -> str:
        digest = hashlib.sha256()
        for name in FILES:
            if name in self.texts:
                raw = self.texts[name].encode()
                digest.update(f"{name}\0{len(raw)}\0".encode() + raw)
        digest.update(("\0".join([MACHINES_DIR, *self.machine_dirs])).encode())
        return digest.hexdigest()

    @property
    def files(self) -> list[str]:
        return [name for name in FILES if name in self.texts]

    def data(self, name: str) -> Any:
        """The parsed content of a file (a parse error is raised as the usual problem)."""
        if name not in self._data:
            text = self.texts.get(name)
            if text is None:
                self._data[name] = {}
            elif name == CLAN_TOML:
                self._data[name] = parse_toml(text, name)
            else:
                self._data[name] = _plain_json(text, name)
        return self._data[name]


def _plain_json(text: str, name: str) -> Any:
    parse_json(text, name)  # every problem reported the usual way first
    return json.loads(text) if text.strip() else {}


def read_snapshot(clan_dir: Path) -> Snapshot:
    """Read the inventory files (never through a symlink) and the names of `machines/` folders."""
    texts: dict[str, str] = {}
    for name in FILES:
        data = safepath.read_bytes(clan_dir, clan_dir / name, kind=KIND)
        if data is not None:
            try:
                texts[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise ClanError.single("parse-error", "", "not valid UTF-8", file=name) from None
    dirs: list[str] = []
    machines = clan_dir / MACHINES_DIR
    if safepath.is_dir(clan_dir, machines, kind=KIND):
        dirs = sorted(e.name for e in machines.iterdir() if e.is_dir() and not e.is_symlink())
    return Snapshot(clan_dir, texts, dirs)


def require_unchanged(snapshot: Snapshot, expected_hash: str | None) -> None:
    """Refuse a write based on a read of other file contents (a lost update otherwise)."""
    if expected_hash is not None and expected_hash != snapshot.hash:
        raise ClanError.single(
            CHANGED_KIND, "", "the inventory changed since it was read",
            file=", ".join(snapshot.files) or None,
            hint="read it again (get_inventory_state / show), re-apply your change and write with the new hash",
        )


# ---------------------------------------------------------------------------------------------
# paths in plain data


def _is_settings(path: Path_) -> bool:
    n = len(path)
    return (n == 5 or (n == 7 and path[4] in ("machines", "tags"))) and path[0] == "instances" \
        and path[2] == "roles" and path[-1] == "settings"


def _inside_settings(path: Path_) -> bool:
    return any(_is_settings(path[:i]) for i in (5, 7) if len(path) > i)


def droppable(path: Path_) -> bool:
    """An empty value here means the same as no value (an empty role, tag list, settings block…)."""
    if _inside_settings(path):
        return False
    n = len(path)
    if n == 1:
        return path[0] in ("instances", "machines", "tags")
    if path[0] == "machines":
        return n == 3 and path[2] in ("tags", "deploy")
    if path[0] == "instances":
        return (n == 3 and path[2] == "roles") or (n == 4 and path[2] == "roles") or \
            (n == 5 and path[2] == "roles" and path[4] in ("machines", "tags")) or _is_settings(path)
    return False


def canonical(data: Any, path: Path_ = ()) -> Any:
    """`data` without empty values where they mean nothing (to compare two renderings)."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            sub = (*path, key)
            value = canonical(value, sub)
            if value in ({}, []) and droppable(sub):
                continue
            out[key] = value
        return out
    if isinstance(data, list):
        return [canonical(v, path) for v in data]
    return data


def depth(data: Any, path: Path_) -> int:
    node = data
    for i, key in enumerate(path):
        if not isinstance(node, dict) or key not in node:
            return i
        node = node[key]
    return len(path)


def lookup(data: Any, path: Path_) -> Any:
    node = data
    for key in path:
        node = node[key]
    return node


def _nested(path: Path_, value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value


def set_plain(data: dict[str, Any], path: Path_, value: Any) -> None:
    node = data
    for i, key in enumerate(path[:-1]):
        child = node.get(key)
        if not isinstance(child, dict):
            node[key] = _nested(path[i + 1:], copy.deepcopy(value))
            return
        node = child
    node[path[-1]] = copy.deepcopy(value)


def delete_plain(data: dict[str, Any], path: Path_) -> None:
    """Delete `path`, then every parent it leaves empty where empty means absent."""
    parents = [data]
    for key in path[:-1]:
        parents.append(parents[-1][key])
    del parents[-1][path[-1]]
    for i in range(len(path) - 1, 0, -1):
        if parents[i] in ({}, []) and droppable(path[:i]):
            del parents[i - 1][path[i - 1]]
        else:
            break


# ---------------------------------------------------------------------------------------------
# planning


@dataclass
class Op:
    action: str  # "set" | "delete" | "append" | "remove-item"
    path: Path_
    value: Any = None


class Plan:
    """One write, planned on the parsed files: where each change lands, and the new texts."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.data: dict[str, Any] = {f: copy.deepcopy(snapshot.data(f)) for f in FILES}
        self.ops: dict[str, list[Op]] = {}
        self.changes: list[str] = []
        self.blocks: list[tuple[str, str, Path_]] = []  # settings blocks written: (instance, role, path)

    # where things are
    def present(self) -> list[str]:
        return [f for f in FILES if f in self.snapshot.texts or self.ops.get(f)]

    def tool_file(self) -> str:
        texts = self.snapshot.texts
        return CLAN_TOML if CLAN_TOML in texts or INVENTORY_JSON not in texts else INVENTORY_JSON

    def defining(self, path: Path_) -> list[str]:
        """The files that define `path` itself (clan.toml first)."""
        return [f for f in FILES if depth(self.data[f], path) == len(path)]

    def landing(self, path: Path_) -> str:
        """Where a value at `path` is written (the module docstring's rule). A top-level table
        alone does not draw new entries (a new machine goes to the tool file), but `meta` does."""
        best, best_depth = self.tool_file(), 0 if path[:1] == ("meta",) else 1
        for f in FILES:
            d = depth(self.data[f], path)
            if d > best_depth:
                best, best_depth = f, d
        return best

    def get(self, path: Path_) -> Any:
        for f in self.defining(path):
            return lookup(self.data[f], path)
        return None

    # changes
    def _record(self, file: str, op: Op, what: str) -> None:
        self.ops.setdefault(file, []).append(op)
        self.changes.append(f"{file}: {what} {format_path(op.path)}")

    def set(self, path: Path_, value: Any, file: str | None = None) -> str:
        """Set `path` to `value` in its landing file; other files defining it drop their copy."""
        target = file or (self.defining(path) or [self.landing(path)])[0]
        for other in self.defining(path):
            if other != target:
                self.delete_in(other, path)
        self.set_in(target, path, value)
        return target

    def set_in(self, file: str, path: Path_, value: Any) -> None:
        """Set `path` in `file` only (other files keep their definitions)."""
        set_plain(self.data[file], path, value)
        self._record(file, Op("set", path, value), "set")

    def delete_in(self, file: str, path: Path_) -> None:
        delete_plain(self.data[file], path)
        self._record(file, Op("delete", path), "removed")

    def delete(self, path: Path_) -> list[str]:
        """Remove `path` from every file that defines it; returns those files."""
        files = self.defining(path)
        for f in files:
            self.delete_in(f, path)
        return files

    def append(self, file: str, path: Path_, item: Any) -> None:
        lookup(self.data[file], path).append(copy.deepcopy(item))
        self._record(file, Op("append", path, item), f"added {json.dumps(item)} to")

    def remove_item(self, file: str, path: Path_, item: Any) -> None:
        items = lookup(self.data[file], path)
        items[:] = [x for x in items if x != item]
        self._record(file, Op("remove-item", path, item), f"removed {json.dumps(item)} from")
        if not items and droppable(path):
            self.delete_in(file, path)

    # rendering
    def texts(self) -> dict[str, str]:
        """The new text of every changed file (checked to parse back to the planned data)."""
        out: dict[str, str] = {}
        for file, ops in self.ops.items():
            if not ops:
                continue
            if file == CLAN_TOML:
                out[file] = render_toml(self.snapshot.texts.get(file, ""), ops, self.data[file])
            else:
                out[file] = render_json(self.snapshot.texts.get(file), self.data[file])
            if out[file] == self.snapshot.texts.get(file):
                del out[file]
        return out


# ---------------------------------------------------------------------------------------------
# rendering inventory.json


def _indent_of(text: str | None) -> int:
    if text:
        found = re.search(r"\n( +)\S", text)
        if found:
            return len(found.group(1))
    return 2


def render_json(old: str | None, data: Any) -> str:
    """inventory.json as Clan writes it (indent 2, or the file's own), keys in their order."""
    return json.dumps(data, indent=_indent_of(old), ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# rendering clan.toml


def _has_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return False


def _inline(value: Any) -> Any:
    """A TOML item for a JSON value: objects as inline tables (a value stays on its line)."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for key, item in value.items():
            table[key] = _inline(item)
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        for item in value:
            array.append(_inline(item))
        return array
    return tomlkit.item(value)


def _is_container(node: Any) -> bool:
    return isinstance(node, dict)


def _header_table(node: Any) -> bool:
    return isinstance(node, tomlkit.items.Table) and not node.is_super_table()


def _single_chain(value: Any) -> tuple[Path_, Any]:
    """`{module: {name: x}}` → (("module", "name"), x): written as one dotted key."""
    keys: list[str] = []
    while isinstance(value, dict) and len(value) == 1:
        key, value = next(iter(value.items()))
        keys.append(key)
        if value == {}:
            break
    return tuple(keys), value


def _new_table(value: dict[str, Any]) -> Any:
    table = tomlkit.table()
    for key, item in value.items():
        _put(table, key, item, "tables")
    return table


def _reached_by_dotted_key(parent: Any, key: str) -> bool:
    """Whether `parent[key]` was written as part of a dotted key (`roles.peer.machines.a = {}`)."""
    if isinstance(parent, tomlkit.container.OutOfOrderTableProxy):
        return True  # split over several places: only inline values are safe
    body = parent.body if isinstance(parent, tomlkit.TOMLDocument) else getattr(parent.value, "body", None)
    if isinstance(parent, tomlkit.items.InlineTable):
        return True
    return any(k is not None and k.key == key and k.is_dotted() for k, _ in body or ())


def _put(node: Any, key: str, value: Any, layout: str, dotted: bool = False) -> None:
    """Write `key = value` into a tomlkit container in the given layout: "tables" (new [tables]
    under super tables, dotted keys in tables) or "inline" (one `key = {…}` line). Inside a
    dotted key's table only inline values stay where they belong."""
    if dotted:
        node[key] = _inline(value)
        return
    superish = isinstance(node, tomlkit.TOMLDocument) or (
        layout == "tables" and isinstance(node, tomlkit.items.Table) and node.is_super_table()
    )
    if superish and isinstance(value, dict) and key not in node:
        if isinstance(node, tomlkit.TOMLDocument) and len(value) == 1 and all(
            isinstance(v, dict) for v in value.values()
        ):
            outer = tomlkit.table(is_super_table=True)
            for name, inner in value.items():
                outer[name] = _new_table(inner)
            node[key] = outer
        else:
            table = _new_table(value)
            table.add(tomlkit.nl())
            node[key] = table
        return
    if key in node:
        node[key] = _inline(value)
        return
    chain, leaf = _single_chain(value)
    if layout == "tables" and _header_table(node) and chain:
        node.add(tomlkit.key([key, *chain]), _inline(leaf))
        return
    node[key] = _inline(value)


def _toml_set(doc: Any, path: Path_, value: Any, layout: str) -> None:
    node = doc
    dotted = False
    for i, key in enumerate(path[:-1]):
        child = node.get(key) if _is_container(node) else None
        if not _is_container(child):
            if key in node:
                del node[key]
            _put(node, key, _nested(path[i + 1:], value), layout, dotted)
            return
        dotted = dotted or _reached_by_dotted_key(node, key)
        node = child
    _put(node, path[-1], value, layout, dotted)


def _toml_node(doc: Any, path: Path_) -> Any:
    node = doc
    for key in path:
        if not _is_container(node) or key not in node:
            return None
        node = node[key]
    return node


def _toml_delete(doc: Any, path: Path_, layout: str) -> None:
    """Delete `path` and the parents it leaves empty where empty means absent (looked up afresh:
    tomlkit's proxies go stale). tomlkit drops an emptied dotted table by itself; a parent that
    must stay (a role's machine entry) is then written back as `{}`."""
    holder = _toml_node(doc, path[:-1])
    if holder is None or path[-1] not in holder:
        return
    del holder[path[-1]]
    keep = 0
    for i in range(len(path) - 1, 0, -1):
        parent, node = _toml_node(doc, path[:i - 1]), _toml_node(doc, path[:i])
        if node is not None and not (_is_container(node) and len(node) == 0):
            keep = i
            break
        if not droppable(path[:i]):
            keep = i
            break
        if node is not None:
            del parent[path[i - 1]]
    kept = _toml_node(doc, path[:keep]) if keep else doc
    if kept is None or (keep and _is_container(kept) and len(kept) == 0):
        if kept is not None:  # an emptied dotted table renders as nothing at all
            del _toml_node(doc, path[:keep - 1])[path[keep - 1]]
        _toml_set(doc, path[:keep], {}, layout)


def _toml_apply(doc: Any, op: Op, layout: str) -> None:
    if op.action == "set":
        _toml_set(doc, op.path, op.value, layout)
    elif op.action == "delete":
        _toml_delete(doc, op.path, layout)
    else:
        node = doc
        for key in op.path:
            node = node[key]
        if op.action == "append":
            node.append(_inline(op.value))
        else:
            for index in reversed([i for i, x in enumerate(node) if x == op.value]):
                del node[index]  # an emptied list is deleted by the plan's next op


def render_toml(old: str, ops: list[Op], expected: Any) -> str:
    """clan.toml with `ops` applied by tomlkit, refused unless it reads back as `expected`."""
    for op in ops:
        if op.action in ("set", "append") and _has_null(op.value):
            raise ClanError.single(
                KIND, format_path(op.path), "cannot be written to clan.toml: TOML has no null value",
                file=CLAN_TOML, hint="unset the value instead, or keep this part of the inventory in inventory.json",
            )
    why = ""
    for layout in ("tables", "inline"):
        doc = tomlkit.parse(old)
        try:
            for op in ops:
                _toml_apply(doc, op, layout)
            text = tomlkit.dumps(doc)
            again = tomllib.loads(text)
        except Exception as exc:  # tomlkit refusing a layout, or rendering invalid TOML
            why = f"{type(exc).__name__}: {exc}"
            continue
        if canonical(again) == canonical(expected):
            return text
        why = "tomlkit would render a different value"
    raise _layout_error(ops, why)


def _layout_error(ops: list[Op], why: str) -> ClanError:
    where = format_path(ops[-1].path) if ops else ""
    return ClanError.single(
        KIND, where, f"cannot write this change to clan.toml while keeping its layout ({why})",
        file=CLAN_TOML, hint="make the change by hand, or write this part of the inventory as a plain [table]",
    )


# ---------------------------------------------------------------------------------------------
# committing


def commit(clan_dir: Path, texts: dict[str, str]) -> None:
    """Replace every file of `texts` together: all new, or (on failure) all as they were."""
    if not texts:
        return
    prepared: list[tuple[Path, Path]] = []
    originals: dict[Path, bytes | None] = {}
    try:
        for name, text in texts.items():
            target = safepath.check(clan_dir, clan_dir / name, kind=KIND)
            originals[target] = safepath.read_bytes(clan_dir, target, kind=KIND)
            prepared.append((_write_temp(clan_dir, target, text.encode()), target))
    except BaseException:
        for tmp, _ in prepared:
            tmp.unlink(missing_ok=True)
        raise
    done: list[Path] = []
    try:
        for tmp, target in prepared:
            safepath.check(clan_dir, target, kind=KIND)
            os.replace(tmp, target)
            done.append(target)
        _fsync_dir(clan_dir)
    except BaseException as exc:
        for tmp, _ in prepared:
            tmp.unlink(missing_ok=True)
        for target in done:
            before = originals[target]
            if before is None:
                target.unlink(missing_ok=True)
            else:
                os.replace(_write_temp(clan_dir, target, before), target)
        if isinstance(exc, OSError):
            raise safepath.os_error(clan_dir, prepared[len(done)][1], exc, "write it", kind=KIND) from None
        raise


def _write_temp(clan_dir: Path, target: Path, data: bytes) -> Path:
    try:
        mode = stat.S_IMODE(os.lstat(target).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise safepath.os_error(clan_dir, target, exc, "write it", kind=KIND) from None
    return tmp


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# paths given by users


def parse_key_path(text: str | list[str] | None, what: str = "path") -> Path_:
    """A dotted path in TOML key syntax (`a.b`, `a."b.c"`), or a list of keys; `None`/"" → ()."""
    if text is None or text == "" or text == []:
        return ()
    if isinstance(text, list):
        if not all(isinstance(k, str) and k for k in text):
            raise ClanError.single(KIND, what, "every key of the path must be a non-empty string")
        return tuple(text)
    try:
        parsed = tomllib.loads(f"{text} = 0")
    except tomllib.TOMLDecodeError:
        raise ClanError.single(KIND, what, f"{text!r} is not a dotted key path",
                               hint='write keys separated by dots; quote a key that holds a dot: a."b.c"') from None
    keys: list[str] = []
    node: Any = parsed
    while isinstance(node, dict):
        (key, node), = node.items()
        keys.append(key)
    return tuple(keys)


def walk_values(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every (sub-path, value) of a JSON value's objects, outermost first."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk_values(item, (*path, key))
