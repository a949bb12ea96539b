"""Loading a clan's inventory from its directory (clan-semantics §1).

A clan directory holds `clan.toml` (hand-written) and/or `inventory.json` (Clan's own format),
plus optional `machines/<name>/` folders. They are parsed, merged as module-system definitions
(`sources.py`), validated in one pydantic call, and every problem found — in every file — is
raised at once as a `ClanError`, each with its inventory path and the file that defined it.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from pyclan.errors import ClanError, Problem, did_you_mean
from pyclan.inventory.models import MACHINE_NAME_MAX, Inventory, Role, validate_settings_block, value_kind
from pyclan.inventory.sources import (
    Attribution,
    Segments,
    add_machine_dirs,
    duplicate_settings,
    format_path,
    is_settings_path,
    json_int,
    json_object,
    merge_sources,
    normalise,
    option,
    settings_path,
    short_value,
    size_problem,
    toml_prescan,
    value_problem,
)
from pyclan.inventory.target_host import SYNTAX_HINT as _TARGET_HOST_HINT
from pyclan.perf import gc_paused

__all__ = [
    "CLAN_DIR_ENV",
    "CLAN_TOML",
    "INVENTORY_JSON",
    "LoadedInventory",
    "find_clan_dir",
    "load_inventory",
    "load_inventory_data",
    "parse_json",
    "parse_toml",
    "settings_path",
]

CLAN_TOML = "clan.toml"
INVENTORY_JSON = "inventory.json"
MACHINES_DIR = "machines"
CLAN_DIR_ENV = "CLAN_DIR"

_MACHINE_NAME_HINT = (
    "machine names must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ (letters, digits and '-', "
    f"not starting or ending with '-') and have at most {MACHINE_NAME_MAX} characters; "
    "they become host names"
)


@dataclass
class LoadedInventory:
    clan_dir: Path
    inventory: Inventory
    files: list[str]  # the files loaded, relative to clan_dir
    settings_files: dict[str, str]  # settings block path → the file that defined it
    warnings: list[str] = field(default_factory=list)
    # lenient loading only: the settings blocks that were not valid blocks (each replaced by `{}`)
    problems: list[Problem] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# finding the clan directory


def _has_inventory(directory: Path) -> bool:
    return (directory / CLAN_TOML).is_file() or (directory / INVENTORY_JSON).is_file()


def _not_found(message: str) -> ClanError:
    return ClanError(
        Problem(
            "usage-error",
            "",
            message,
            hint="create a clan with `pyclan init`, or point at one with -C DIR",
        )
    )


def find_clan_dir(flake: Path | None = None, start: Path | None = None) -> Path:
    """The clan directory: `flake` if given (-C DIR); else the nearest directory from `start`
    upwards that holds clan.toml or inventory.json; without `start`, $CLAN_DIR if set, else
    that search from the working directory. An explicit directory may also be a clan that has
    only `machines/` so far."""
    given = flake
    origin = "given"
    if given is None and start is None and os.environ.get(CLAN_DIR_ENV):
        given = Path(os.environ[CLAN_DIR_ENV])
        origin = f"${CLAN_DIR_ENV}"
    if given is not None:
        directory = given.expanduser()
        if not directory.is_dir():
            raise _not_found(f"the clan directory {str(given)!r} ({origin}) does not exist")
        if not (_has_inventory(directory) or (directory / MACHINES_DIR).is_dir()):
            raise _not_found(
                f"{str(given)!r} ({origin}) is not a clan directory: "
                f"it has no {CLAN_TOML}, {INVENTORY_JSON} or {MACHINES_DIR}/"
            )
        return directory.resolve()
    here = (start if start is not None else Path.cwd()).expanduser().resolve()
    for directory in (here, *here.parents):
        if _has_inventory(directory):
            return directory
    raise _not_found(f"no {CLAN_TOML} or {INVENTORY_JSON} in {str(here)!r} or any parent directory")


# ---------------------------------------------------------------------------------------------
# parsing

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_END = re.compile(r"\s*\(at end of document\)$")
_LONG_DIGITS = re.compile(r"[0-9a-fA-F_]{1000,}")
_JSON_CONSTANT = re.compile(r"(?<=[:\[,])\s*(-?Infinity|NaN)\b")


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def parse_toml(text: str, file: str = CLAN_TOML) -> Any:
    """Parse TOML; a syntax error becomes a `parse-error` problem with line and column.

    Size, key length and nesting are bounded first (`sources.MAX_*`), so bad input stays cheap."""
    limited = size_problem(file, len(text), "characters") or toml_prescan(text, file)
    if limited is not None:
        raise ClanError(limited)
    try:
        value = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        line: int | None = None
        column: int | None = None
        found = _TOML_POSITION.search(message)
        if found:
            line, column = int(found.group(1)), int(found.group(2))
            message = message[: found.start()]
        elif _TOML_END.search(message):
            line, column = _position(text, len(text))
            message = _TOML_END.sub("", message)
        hint = None
        if message.startswith(("Cannot overwrite", "Cannot declare")):
            hint = "a key or table is defined twice in this file"
        raise ClanError(
            Problem(
                "parse-error",
                "",
                f"invalid TOML: {message}",
                file=file,
                line=line,
                column=column,
                hint=hint,
            )
        ) from None
    except ValueError:  # an integer with more digits than Python converts (4,300)
        digits = _LONG_DIGITS.search(text)
        line, column = _position(text, digits.start()) if digits else (None, None)
        raise ClanError(
            Problem(
                "parse-error", "", "invalid TOML: an integer with thousands of digits is out of range "
                "(integers are 64-bit)", file=file, line=line, column=column,
            )
        ) from None
    except RecursionError:
        raise ClanError(Problem("parse-error", "", "invalid TOML: nested too deeply", file=file)) from None
    problem = value_problem(value, file)
    if problem is not None:
        raise ClanError(problem)
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def parse_json(text: str, file: str = INVENTORY_JSON) -> Any:
    """Parse strict JSON (no NaN/Infinity); errors become `parse-error` problems with line and column."""
    limited = size_problem(file, len(text), "characters")
    if limited is not None:
        raise ClanError(limited)
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_int=json_int, object_pairs_hook=json_object)
    except json.JSONDecodeError as exc:
        raise ClanError(
            Problem("parse-error", "", f"invalid JSON: {exc.msg}", file=file, line=exc.lineno, column=exc.colno)
        ) from None
    except ValueError as exc:  # from _reject_constant
        line: int | None = None
        column: int | None = None
        found = _JSON_CONSTANT.search(text)
        if found:
            line, column = _position(text, found.start(1))
        raise ClanError(
            Problem(
                "parse-error",
                "",
                f"invalid JSON: {exc} is not a JSON value",
                file=file,
                line=line,
                column=column,
            )
        ) from None
    except RecursionError:
        raise ClanError(Problem("parse-error", "", "invalid JSON: nested too deeply", file=file)) from None
    problem = value_problem(value, file)
    if problem is not None:
        raise ClanError(problem)
    return value


def _read_source(path: Path, name: str) -> Any:
    try:
        too_big = size_problem(name, path.stat().st_size)
        if too_big is not None:
            raise ClanError(too_big)
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(exc.object.decode("utf-8", "replace"), exc.start)
        raise ClanError(Problem("parse-error", "", "not valid UTF-8", file=name, line=line, column=column)) from None
    except OSError as exc:
        raise ClanError(Problem("parse-error", "", f"cannot read: {exc.strerror}", file=name)) from None
    if name.endswith(".json"):
        return parse_json(text, name)
    return parse_toml(text, name)


# ---------------------------------------------------------------------------------------------
# loading


def load_inventory(clan_dir: Path, lenient: bool = False) -> LoadedInventory:
    """Load, merge and validate a clan directory's inventory; raises ClanError with every problem.

    `lenient` (for `pyclan check`, which goes on to later stages): settings blocks that are not valid
    blocks (R1.8a/c) are replaced by `{}` and their problems returned in `LoadedInventory.problems`.
    """
    with gc_paused(freeze=False):  # parsing and validation build many containers and free none
        return _load_dir(Path(clan_dir), lenient)


def _load_dir(clan_dir: Path, lenient: bool = False) -> LoadedInventory:
    problems: list[Problem] = []
    sources: list[tuple[str, Any]] = []
    for name in (CLAN_TOML, INVENTORY_JSON):
        path = clan_dir / name
        if path.is_file():
            try:
                sources.append((name, _read_source(path, name)))
            except ClanError as exc:
                problems.extend(exc.problems)
    if problems:
        # A file that could not be parsed would only give misleading follow-up errors.
        raise ClanError(problems)
    machine_dirs: list[str] = []
    machines = clan_dir / MACHINES_DIR
    if machines.is_dir():
        try:
            machine_dirs = sorted(entry.name for entry in machines.iterdir() if entry.is_dir())
        except OSError as exc:
            raise ClanError(
                Problem("parse-error", "", f"cannot read: {exc.strerror}", file=f"{MACHINES_DIR}/")
            ) from None
    return load_inventory_data(sources, machine_dirs=machine_dirs, clan_dir=clan_dir, lenient=lenient)


def load_inventory_data(
    sources: Sequence[tuple[str, Any]],
    *,
    machine_dirs: Iterable[str] = (),
    clan_dir: Path | None = None,
    lenient: bool = False,
) -> LoadedInventory:
    """The loading pipeline on parsed data: `sources` are (file name, value) in merge order,
    `machine_dirs` the names of `machines/<name>/` folders. Raises ClanError with every problem."""
    try:
        with gc_paused(freeze=False):
            return _load(sources, list(machine_dirs), clan_dir or Path("."), lenient)
    except RecursionError:
        raise ClanError(Problem("inventory-type", "", "the inventory is nested too deeply to be loaded")) from None


def _load(
    sources: Sequence[tuple[str, Any]], machine_dirs: list[str], clan_dir: Path, lenient: bool = False
) -> LoadedInventory:
    problems: list[Problem] = []
    normalised = [s for name, raw in sources if (s := normalise(name, raw, problems)) is not None]
    settings_files = duplicate_settings(normalised, problems)
    merged = add_machine_dirs(merge_sources(normalised, problems), machine_dirs)
    attribution = Attribution(normalised, frozenset(machine_dirs))

    inventory: Inventory | None = None
    try:
        inventory = Inventory.model_validate(merged)
    except ValidationError as exc:
        converted = _convert_errors(exc, attribution)
        if len(normalised) < len(sources):  # a source that is not an attrset may hold `meta`
            converted = [p for p in converted if p.path != "meta.name" or "no value" not in p.message]
        problems.extend(converted)

    kept: list[Problem] = []
    if problems and lenient and all(p.kind == "settings-type" for p in problems):
        try:
            inventory = Inventory.model_validate(_without_bad_settings(merged))
            kept, problems = _dedupe(problems), []
        except ValidationError:
            pass
    if problems:
        raise ClanError(_dedupe(problems))
    assert inventory is not None
    return LoadedInventory(
        clan_dir=clan_dir,
        inventory=inventory,
        files=[name for name, _ in sources],
        settings_files=settings_files,
        warnings=_warnings(inventory),
        problems=kept,
    )


def _valid_block(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    try:
        validate_settings_block(value)
    except PydanticCustomError:
        return False
    return True


def _without_bad_settings(merged: Any) -> Any:
    """The merged data with every settings block that is not a valid block replaced by `{}` (copies on write)."""
    instances = merged.get("instances") if isinstance(merged, dict) else None
    if not isinstance(instances, dict):
        return merged

    def fixed(holder: Any) -> Any:  # a role, a role's machine or a role's tag
        if isinstance(holder, dict) and "settings" in holder and not _valid_block(holder["settings"]):
            return {**holder, "settings": {}}
        return holder

    def fixed_role(role: Any) -> Any:
        if not isinstance(role, dict):
            return role
        role = fixed(role)
        for key in ("machines", "tags"):
            entries = role.get(key)
            if isinstance(entries, dict):
                role = {**role, key: {name: fixed(entry) for name, entry in entries.items()}}
        return role

    out: dict[str, Any] = {}
    for name, instance in instances.items():
        roles = instance.get("roles") if isinstance(instance, dict) else None
        if isinstance(roles, dict):
            instance = {**instance, "roles": {r: fixed_role(role) for r, role in roles.items()}}
        out[name] = instance
    return {**merged, "instances": out}


def _dedupe(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


def _warnings(inventory: Inventory) -> list[str]:
    warnings: list[str] = []
    meta = inventory.meta
    if meta.tld is not None:
        if meta.domain is None:
            warnings.append(f"meta.tld is deprecated: using it as meta.domain ({meta.tld!r}); rename it to meta.domain")
        else:
            warnings.append("meta.tld is deprecated and ignored because meta.domain is set; remove it")
    for tag, members in inventory.tags.items():
        unknown = [m for m in dict.fromkeys(members) if m not in inventory.machines]
        for machine in unknown:
            text = f"tags.{format_path([tag])}: {machine!r} is not an inventory machine, so it never gets this tag"
            hint = did_you_mean(machine, inventory.machines)
            warnings.append(f"{text} ({hint})" if hint else text)
    return warnings


# ---------------------------------------------------------------------------------------------
# pydantic errors → problems


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and `X | None`."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


_NOUNS: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    int: ("an integer", "integers"),
    bool: ("a boolean", "booleans"),
    float: ("a float", "floats"),
}


def _describe(tp: Any, plural: bool = False) -> str:
    """The expected type in Nix-ish words: "a list of strings", "null or a string", …"""
    if tp is Any:
        return "values" if plural else "anything"
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner = typing.get_args(tp)[0]
        if typing.get_origin(inner) is dict:
            return "attrsets (JSON objects)" if plural else "an attrset (a JSON object)"
        return _describe(inner, plural)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        rest = " or ".join(_describe(a, plural) for a in args)
        return f"null or {rest}" if len(args) < len(typing.get_args(tp)) else rest
    if origin is list:
        items = _describe(typing.get_args(tp)[0], True)
        return f"lists of {items}" if plural else f"a list of {items}"
    if origin is dict and typing.get_args(tp)[1] is Any:
        return "attrsets (JSON objects)" if plural else "an attrset (a JSON object)"
    if origin is dict:
        items = _describe(typing.get_args(tp)[1], True)
        return f"attrsets of {items}" if plural else f"an attrset of {items}"
    if origin is Literal:
        choices = ", ".join(json.dumps(a) for a in typing.get_args(tp))
        return f"values out of {choices}" if plural else f"one of {choices}"
    if tp in _NOUNS:
        return _NOUNS[tp][1 if plural else 0]
    if _is_model(tp):
        return "attrsets" if plural else "an attrset"
    return getattr(tp, "__name__", str(tp))


@dataclass
class _Located:
    path: Segments  # where the problem is reported (list items collapse onto their list)
    tp: Any  # the annotation at `path` (None if unknown)
    parent: Any  # the model owning the last segment, if it is a field
    item: tuple[int, Any] | None = None  # (index, value) for a bad list item


def _locate(loc: tuple[int | str, ...]) -> _Located:
    tp: Any = Inventory
    parent: Any = None
    path: list[Any] = []
    for segment in loc:
        current = _unwrap(tp)
        if _is_model(current):
            parent = current
            info = current.model_fields.get(segment) if isinstance(segment, str) else None
            tp = info.annotation if info is not None else None
        elif typing.get_origin(current) is dict:
            parent = None
            tp = typing.get_args(current)[1]
        elif typing.get_origin(current) is list and isinstance(segment, int):
            return _Located(tuple(path), tp, parent, item=(segment, None))
        else:
            parent = None
            tp = None
        path.append(segment)
    return _Located(tuple(path), tp, parent)


def _unknown_field_hint(parent: Any, key: Any) -> str | None:
    if not _is_model(parent) or not isinstance(key, str):
        return None
    fields = list(parent.model_fields)
    for name, info in parent.model_fields.items():  # e.g. `targetHost` under a machine
        inner = _unwrap(info.annotation)
        if _is_model(inner) and key in inner.model_fields:
            return f"did you mean `{name}.{key}`?"
    return did_you_mean(key, fields) or "valid fields: " + ", ".join(fields)


def _special_hint(located: _Located, value: Any) -> str | None:
    path = located.path
    last = path[-1] if path else None
    if located.parent is Role and last == "machines" and isinstance(value, list):
        return (
            "`machines` maps machine names to their settings: write `roles.<role>.machines.<name> = {}` "
            "for each machine, or select machines with `roles.<role>.tags`"
        )
    if last == "settings":
        return "a settings block is an attrset, e.g. `roles.<role>.settings.<option> = …`"
    if last == "installedAt":
        return "installedAt is a time in unix seconds, e.g. 1718000000"
    if path == ("meta", "name"):
        return "only letters, digits, '-' and '_' are allowed"
    if path == ("meta", "domain"):
        return 'a lower-case DNS domain, e.g. "clan" or "home.example.org"'
    if path == ("meta", "tld"):
        return "`meta.tld` is deprecated: use `meta.domain`"
    return None


def _convert_errors(exc: ValidationError, attribution: Attribution) -> list[Problem]:
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        problem = _convert(error, attribution)
        if problem is not None:
            problems.append(problem)
    return problems


def _convert_key_error(etype: str, path: Segments, key: Any, attribution: Attribution) -> Problem:
    """An attribute name that is not a string, or an invalid inventory machine name."""
    file = attribution.file_of(path)
    if not isinstance(key, str):
        parent = format_path(path[:-1])
        return Problem(
            "inventory-type",
            parent,
            f"attribute names must be strings, got {value_kind(key)} ({short_value(key)})",
            file=file,
        )
    reason = "too long for a machine name" if etype == "string_too_long" else "not a valid machine name"
    return Problem(
        "inventory-type",
        format_path(path),
        f"{short_value(key, 80)} is {reason}",
        file=file,
        hint=_MACHINE_NAME_HINT,
    )


def _show_block(value: Any, limit: int = 300) -> str:
    """A settings block as JSON for a message; TOML dates as their text, other non-JSON values as repr."""
    try:
        text = json.dumps(
            value, ensure_ascii=False, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else repr(o)
        )
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _settings_block_problem(etype: str, text: str, detail: str, value: Any, file: str | None) -> Problem:
    """R1.8a/c: a settings block that is not a JSON object, or has a top-level `imports`, in Clan's words."""
    where = f"In `{file or '<unknown-file>'}, via option inventory.{text}'"
    shown = _show_block(value)
    if etype == "settings_imports":
        return Problem(
            "settings-type",
            text,
            f"The option {option(text)} is a settings block, and uniqueDeferredSerializableModule "
            f"doesn't allow nested imports. Definition values:\n- {where}: {shown}",
            file=file,
            hint="remove the top-level `imports` key: the block is the settings themselves",
        )
    reason = f" ({detail})" if etype == "settings_not_json" else ""
    return Problem(
        "settings-type",
        text,
        f"A definition for option {option(text)} is not of type `deferred custom module. Must be JSON "
        f"serializable.'{reason}. Definition values:\n- {where}: {shown}",
        file=file,
        hint="a settings block is an attrset (a table / JSON object) of plain JSON values, "
        "e.g. `roles.<role>.settings.<option> = …`",
    )


def _convert(error: Any, attribution: Attribution) -> Problem | None:
    etype: str = error["type"]
    loc: tuple[int | str, ...] = tuple(error["loc"])
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if loc and loc[-1] == "[key]":
        return _convert_key_error(etype, loc[:-1], value, attribution)
    located = _locate(loc)
    path = located.path
    text = format_path(path)
    file = attribution.file_of(path)

    if etype == "extra_forbidden" and path:
        return Problem(
            "inventory-unknown-field",
            text,
            f"The option {option(text)} does not exist",
            file=file,
            hint=_unknown_field_hint(located.parent, path[-1]),
        )
    if etype == "missing":
        if path in (("meta",), ("meta", "name")):
            return Problem(
                "inventory-type",
                "meta.name",
                "The option `inventory.meta.name' was accessed but has no value defined (expected a string)",
                file=file,
                hint='every clan needs a name: add `[meta]` with `name = "my-clan"` to clan.toml',
            )
        return Problem(
            "inventory-type",
            text,
            f"The option {option(text)} is required but has no value defined",
            file=file,
        )
    if etype in ("settings_imports", "settings_not_json") or (etype == "dict_type" and is_settings_path(path)):
        return _settings_block_problem(etype, text, str(error["msg"]), value, file)
    if etype == "target_host":
        return Problem("inventory-type", text, f"unsafe target host: {ctx.get('problem')}", file=file,
                       hint=_TARGET_HOST_HINT)
    if etype == "value_error":
        cause = ctx.get("error")
        return Problem("inventory-type", text, str(cause or error["msg"]), file=file)

    expected = _describe(located.tp) if located.tp is not None else None
    if located.parent is Role and path[-1:] == ("tags",):
        expected = "a list of tag names or an attrset of tags (tag → { settings })"
    elif located.parent is Role and path[-1:] == ("machines",):
        expected = "an attrset of machines (name → { settings })"
    if located.item is not None:
        index = loc[len(path)]
        got = f"item {index} is {value_kind(value)} ({short_value(value)})"
        message = f"expected {expected}, but {got}" if expected else f"invalid value: {got}"
    elif etype == "string_pattern_mismatch":
        message = f"expected a string matching {ctx.get('pattern')}, got {short_value(value)}"
    elif etype == "literal_error":  # an enum (machineClass): the module system's type mismatch
        message = (
            f"A definition for option {option(text)} is not of type `{expected or ctx.get('expected')}'. "
            f"Definition values:\n- In `{file or '<unknown-file>'}': {short_value(value)}"
        )
    elif expected is not None:
        message = f"expected {expected}, got {value_kind(value)} ({short_value(value)})"
    else:
        message = str(error["msg"])
    return Problem("inventory-type", text, message, file=file, hint=_special_hint(located, value))
