"""Merging the inventory's sources like module-system definitions (clan-semantics R1.1, R1.8b).

Each source (`clan.toml`, `inventory.json`, a `machines/<name>/` folder) is one definition of the
whole inventory. They merge the way the module system merges definitions: attrsets key by key,
lists concatenate (in source order), scalars must be equal. A settings block may be defined by
one source only, whatever its content.

Only the structure down to the settings blocks is walked in Python (instances × roles × members);
everything else is left to pydantic. With a single source nothing is merged at all.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyclan.errors import Problem
from pyclan.inventory.models import value_kind

Segments = tuple[Any, ...]


def format_path(segments: Iterable[Any]) -> str:
    """Dotted inventory path in Clan's form (`instances.my-vpn.roles.peer.settings`).

    Segments are kept verbatim, so that a path built with an f-string elsewhere finds the same
    key; only an empty name is shown as `""`.
    """
    return ".".join((segment if isinstance(segment, str) else str(segment)) or '""' for segment in segments)


def settings_path(instance: str, role: str, *, machine: str | None = None, tag: str | None = None) -> str:
    """The key of a settings block in `LoadedInventory.settings_files`."""
    segments: list[str] = ["instances", instance, "roles", role]
    if machine is not None:
        segments += ["machines", machine]
    elif tag is not None:
        segments += ["tags", tag]
    return format_path([*segments, "settings"])


def option(path: str) -> str:
    """`inventory.<path>' as Clan quotes an option in its messages."""
    return f"`inventory.{path}'" if path else "`inventory'"


def short_value(value: Any, limit: int = 40) -> str:
    if hasattr(value, "isoformat"):  # TOML dates and times
        return str(value.isoformat())
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_settings_path(path: Segments) -> bool:
    """instances.*.roles.*.settings, …machines.*.settings, …tags.*.settings"""
    n = len(path)
    return (
        (n == 5 or (n == 7 and path[4] in ("machines", "tags")))
        and path[-1] == "settings"
        and path[0] == "instances"
        and path[2] == "roles"
    )


@dataclass
class Source:
    """One definition of the inventory, normalised (role tag lists → attrsets, `services` removed)."""

    name: str
    data: dict[str, Any]
    settings: list[Segments] = field(default_factory=list)


def removed_services_problem(name: str) -> Problem:
    return Problem(
        "inventory-removed-option",
        "services",
        "The option definition `services' no longer has any effect. "
        "The `inventory.services` option has been removed. Use `inventory.instances` instead.",
        file=name,
        hint=(
            "describe each service as an instance, e.g. in clan.toml:\n"
            "    [instances.my-vpn]\n"
            '    module.name = "zerotier"\n'
            '    roles.peer.tags = ["all"]\n'
            "    roles.controller.machines.server1 = {}"
        ),
    )


def normalise(name: str, raw: Any, problems: list[Problem]) -> Source | None:
    """Check a source's top level, coerce role tag lists and collect its settings blocks.

    Never mutates `raw`: changed containers are copied.
    """
    if not isinstance(raw, dict):
        problems.append(
            Problem(
                "inventory-type",
                "",
                f"the inventory must be an attrset (a TOML table / JSON object), got {value_kind(raw)}",
                file=name,
            )
        )
        return None
    data: dict[str, Any] = raw
    if "services" in data:
        problems.append(removed_services_problem(name))
        data = {k: v for k, v in data.items() if k != "services"}
    source = Source(name, data)
    instances = data.get("instances")
    if not isinstance(instances, dict):
        return source
    new_instances: dict[Any, Any] | None = None
    for iname, instance in instances.items():
        if not isinstance(instance, dict):
            continue
        roles = instance.get("roles")
        if not isinstance(roles, dict):
            continue
        new_roles: dict[Any, Any] | None = None
        for rname, role in roles.items():
            if not isinstance(role, dict):
                continue
            base: Segments = ("instances", iname, "roles", rname)
            tags = role.get("tags")
            if isinstance(tags, list) and all(isinstance(t, str) for t in tags):
                role = {**role, "tags": {t: {} for t in tags}}  # R1.7 shorthand
                if new_roles is None:
                    new_roles = dict(roles)
                new_roles[rname] = role
            if "settings" in role:
                source.settings.append((*base, "settings"))
            for kind in ("machines", "tags"):
                members = role.get(kind)
                if isinstance(members, dict):
                    for member, body in members.items():
                        if isinstance(body, dict) and "settings" in body:
                            source.settings.append((*base, kind, member, "settings"))
        if new_roles is not None:
            if new_instances is None:
                new_instances = dict(instances)
            new_instances[iname] = {**instance, "roles": new_roles}
    if new_instances is not None:
        source.data = {**data, "instances": new_instances}
    return source


def lookup_depth(data: Any, path: Segments) -> int:
    """How many leading segments of `path` exist in `data`."""
    node = data
    depth = 0
    for segment in path:
        if isinstance(node, dict):
            try:
                if segment not in node:
                    break
            except TypeError:  # unhashable segment
                break
            node = node[segment]
        elif isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
            node = node[segment]
        else:
            break
        depth += 1
    return depth


@dataclass
class Attribution:
    """Answers "which source defined this path?" for problem reports."""

    sources: Sequence[Source]
    machine_dirs: frozenset[str] = frozenset()

    def file_of(self, path: Segments) -> str | None:
        best: str | None = None
        best_depth = 0
        for source in self.sources:
            depth = lookup_depth(source.data, path)
            if depth > best_depth:
                best, best_depth = source.name, depth
        if (
            best_depth < 2
            and len(path) >= 2
            and path[0] == "machines"
            and isinstance(path[1], str)
            and path[1] in self.machine_dirs
        ):
            return f"machines/{path[1]}"
        if best is None and self.sources:
            return self.sources[0].name
        return best

    def files_defining(self, path: Segments) -> list[str]:
        return [s.name for s in self.sources if lookup_depth(s.data, path) == len(path)]


class _Merger:
    def __init__(self, sources: Sequence[Source], problems: list[Problem]) -> None:
        self.attribution = Attribution(sources)
        self.problems = problems

    def merge(self, a: Any, b: Any, path: Segments, b_name: str) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            if not b:
                return a
            if not a:
                return b
            out = dict(a)
            for key, bv in b.items():
                if key in out:
                    sub = (*path, key)
                    if key == "settings" and is_settings_path(sub):
                        continue  # reported as duplicate-definition already; keep the first
                    out[key] = self.merge(out[key], bv, sub, b_name)
                else:
                    out[key] = bv
            return out
        if isinstance(a, list) and isinstance(b, list):
            return a + b
        if type(a) is type(b) and not isinstance(a, dict | list):
            try:
                if a == b:
                    return a
            except Exception:  # pragma: no cover - only exotic in-memory values
                pass
        self.conflict(path, a, b, b_name)
        return a

    def conflict(self, path: Segments, a: Any, b: Any, b_name: str) -> None:
        defining = [n for n in self.attribution.files_defining(path) if n != b_name]
        a_name = defining[0] if defining else "an earlier source"
        text = format_path(path)
        if isinstance(a, dict | list) or isinstance(b, dict | list):
            detail = f"{value_kind(a)} in {a_name} and {value_kind(b)} in {b_name}"
        else:
            detail = f"{short_value(a)} in {a_name} and {short_value(b)} in {b_name}"
        self.problems.append(
            Problem(
                "conflict",
                text,
                f"The option {option(text)} has conflicting definition values: {detail}",
                file=a_name if defining else b_name,
                hint="define it in one file only, or give both the same value",
            )
        )


def duplicate_settings(sources: Sequence[Source], problems: list[Problem]) -> dict[str, str]:
    """Map every settings block to its source; report blocks defined by several sources (R1.8b)."""
    owner: dict[str, str] = {}
    if len(sources) == 1:
        name = sources[0].name
        return {format_path(p): name for p in sources[0].settings}
    others: dict[str, list[str]] = {}
    for source in sources:
        for segments in source.settings:
            text = format_path(segments)
            if text in owner:
                others.setdefault(text, []).append(source.name)
            else:
                owner[text] = source.name
    for text, names in others.items():
        files = " and ".join([owner[text], *names])
        problems.append(
            Problem(
                "duplicate-definition",
                text,
                f"The option {option(text)} is defined multiple times while it's expected to be unique (in {files}).",
                file=owner[text],
                hint="a settings block may be defined in one source only: keep it entirely in one file",
            )
        )
    return owner


def merge_sources(sources: Sequence[Source], problems: list[Problem]) -> dict[str, Any]:
    """The merged raw inventory of all sources (first source wins where they conflict)."""
    if not sources:
        return {}
    if len(sources) == 1:
        return sources[0].data
    merger = _Merger(sources, problems)
    merged: Any = sources[0].data
    for source in sources[1:]:
        merged = merger.merge(merged, source.data, (), source.name)
    result: dict[str, Any] = merged
    return result


def add_machine_dirs(data: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """R1.1c: each `machines/<name>/` folder defines `machines.<name> = {}`."""
    names = list(names)
    if not names:
        return data
    machines = data.get("machines", {})
    if not isinstance(machines, dict):
        return data  # a type error, reported by validation
    missing = [n for n in names if n not in machines]
    if not missing:
        return data
    merged = dict(machines)
    for name in missing:
        merged[name] = {}
    return {**data, "machines": merged}


# ---------------------------------------------------------------------------------------------
# limits: bad input stays cheap (issue 10.10)
#
# tomllib's cost grows with the square of a key's length (header parts + dotted parts), and
# later stages walk values recursively, so size and nesting are bounded before anything costly
# runs. The limits are well above hand-written or tool-written inventories (a 10,000-machine
# inventory.json is 0.5-1 MiB) and keep the worst file within seconds and well under 1 GiB.

MAX_TOML_BYTES = 512 << 10  # clan.toml: 512 KiB (tomllib is pure Python)
MAX_JSON_BYTES = 2 << 20  # inventory.json: 2 MiB (written by tools, parsed in C)
MAX_KEY_PARTS = 32  # one TOML key path: table header parts + dotted key parts
MAX_DEPTH = 64  # nesting of tables/objects and arrays in any file
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1  # Nix integers are 64-bit


def _too_big(file: str, size: int, limit: int, unit: str = "bytes") -> Problem:
    return Problem(
        "parse-error",
        "",
        f"the file is too large ({size:,} {unit}; at most {limit:,} are read)",
        file=file,
        hint="split the inventory (machines/<name>/ folders, inventory.json) or remove generated content"
        + (f"; a larger inventory.json is allowed with {JSON_LIMIT_ENV}=<MiB>" if file.endswith(".json") else ""),
    )


JSON_LIMIT_ENV = "PYCLAN_INVENTORY_JSON_MIB"  # a larger inventory.json limit, for fleets past ~40,000 machines


def _json_limit() -> int:
    """MAX_JSON_BYTES, or the MiB the user allows in $PYCLAN_INVENTORY_JSON_MIB (never less)."""
    given = os.environ.get(JSON_LIMIT_ENV, "")
    return max(MAX_JSON_BYTES, int(given) << 20) if given.isdigit() else MAX_JSON_BYTES


def size_problem(file: str, size: int, unit: str = "bytes") -> Problem | None:
    """A problem if a file of `size` is over its limit (checked before it is read or parsed)."""
    limit = _json_limit() if file.endswith(".json") else MAX_TOML_BYTES
    return _too_big(file, size, limit, unit) if size > limit else None


# Strings and comments, left to right (so a '#' in a string is not a comment and vice versa). An
# unterminated string runs to the end of its line (or file), and every alternative that starts
# matching succeeds (a lone backslash included), so no start position is scanned twice: linear.
_TOML_OPAQUE = re.compile(
    r'"""(?:[^\\]|\\.?)*?(?:"""|\Z)|\'\'\'.*?(?:\'\'\'|\Z)|"(?:[^"\\\n]|\\[^\n]?)*(?:"|$)|\'[^\'\n]*(?:\'|$)|#[^\n]*',
    re.DOTALL | re.MULTILINE,
)
_KEY_PART = r'(?:[A-Za-z0-9_-]+|"")'
_DOTS = re.compile(r"[ \t]*\.[ \t]*")
_HEADER = re.compile(rf"^[ \t]*\[\[?[ \t]*({_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*)[ \t]*\]")
_KEY = re.compile(rf"(?:^|[{{,])[ \t]*({_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*)[ \t]*=")


def _blank_opaque(match: re.Match[str]) -> str:
    """A string becomes `""` (one key part), a comment nothing; newlines are kept for line numbers."""
    text = match.group(0)
    return ("" if text.startswith("#") else '""') + "\n" * text.count("\n")


def toml_prescan(text: str, file: str) -> Problem | None:
    """A problem if a key path of the TOML `text` is longer than MAX_KEY_PARTS (before parsing)."""
    if "." not in text:
        return None
    plain = _TOML_OPAQUE.sub(_blank_opaque, text)
    header = 0
    for number, line in enumerate(plain.split("\n"), 1):
        if line.count(".") + header <= MAX_KEY_PARTS:
            found = _HEADER.match(line)
            if found:
                header = len(_DOTS.findall(found.group(1))) + 1
            continue
        found = _HEADER.match(line)
        if found:
            header = parts = len(_DOTS.findall(found.group(1))) + 1
        else:
            keys = [len(_DOTS.findall(k)) + 1 for k in _KEY.findall(line)]
            parts = header + max(keys, default=0)
        if parts > MAX_KEY_PARTS:
            return Problem(
                "parse-error",
                "",
                f"a key path of {parts} parts (table header and dotted key) is longer than the "
                f"limit of {MAX_KEY_PARTS}",
                file=file,
                line=number,
                hint="an inventory never nests this deeply; shorten the key",
            )
    return None


def _describe_path(path: Sequence[Any]) -> str:
    text = format_path(path)
    return text if len(text) <= 80 else text[:79] + "…"


def _plainly_valid(value: Any) -> bool:
    """True if `value_problem` has nothing to report, found cheaply (one pass per nesting level,
    the strings of a level checked together, no paths); False if the full walk must look."""
    level = [value]
    for _depth in range(MAX_DEPTH + 1):
        below: list[Any] = []
        strings: list[Any] = []
        for node in level:
            kind = type(node)
            if kind is str:
                strings.append(node)
            elif kind is dict:
                strings.extend(node)
                below.extend(node.values())
            elif kind is list:
                below.extend(node)
            elif kind is int:
                if not INT_MIN <= node <= INT_MAX:
                    return False
            elif kind is float:
                if not math.isfinite(node):
                    return False
            elif kind is not bool and node is not None:
                return False  # a duplicate-key object, a huge integer, a TOML date: the full walk decides
        if strings:
            try:
                text = "".join(strings)
            except TypeError:  # a key that is not a string
                return False
            if not _is_unicode(text):
                return False
        if not below:
            return True
        level = below
    return False  # nested deeper than MAX_DEPTH


def value_problem(value: Any, file: str) -> Problem | None:
    """A problem if parsed data nests deeper than MAX_DEPTH, holds an integer outside Nix's
    64-bit range, or a string that is not valid Unicode (a lone surrogate from a JSON escape)."""
    if _plainly_valid(value):
        return None
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return Problem(
                "parse-error",
                _describe_path(path[:MAX_DEPTH]),
                f"nested more than {MAX_DEPTH} levels deep",
                file=file,
                hint="an inventory never nests this deeply",
            )
        if isinstance(node, dict):
            if isinstance(node, _Duplicated):
                return Problem(
                    "parse-error",
                    _describe_path((*path, node.duplicate)),
                    f"invalid JSON: the key {short_value(node.duplicate)} appears twice in one object",
                    file=file,
                    hint="keep one of the two entries (JSON parsers disagree on which one wins)",
                )
            for key, item in node.items():
                if isinstance(key, str) and not _is_unicode(key):
                    return _surrogate(file, path, key)
                stack.append((item, (*path, key)))
        elif isinstance(node, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(node))
        elif isinstance(node, str):
            if not _is_unicode(node):
                return _surrogate(file, path, node)
        elif isinstance(node, HugeInt) or (
            isinstance(node, int) and not isinstance(node, bool) and not INT_MIN <= node <= INT_MAX
        ):
            if isinstance(node, HugeInt):
                digits = node.digits
            elif node.bit_length() > 256:  # str() of a huge hex literal would itself fail
                digits = f"{'-' if node < 0 else ''}0x{abs(node):x}"
            else:
                digits = str(node)
            shown = digits if len(digits) <= 24 else f"{digits[:20]}… ({len(digits)} digits)"
            return Problem(
                "parse-error",
                _describe_path(path),
                f"the integer {shown} is out of range: integers are 64-bit ({INT_MIN} to {INT_MAX})",
                file=file,
                hint="write a large number as a string",
            )
        elif isinstance(node, float) and not math.isfinite(node):
            return Problem(
                "parse-error",
                _describe_path(path),
                f"the number {node} is out of range: JSON and Nix have no infinite or NaN numbers",
                file=file,
            )
    return None


def _is_unicode(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _surrogate(file: str, path: tuple[Any, ...], text: str) -> Problem:
    return Problem(
        "parse-error",
        _describe_path(path),
        f"\"{text.encode('utf-8', 'backslashreplace').decode()[:60]}\" holds a lone surrogate (a \\ud800–\\udfff "
        "escape without its pair), which is not a Unicode character",
        file=file,
        hint="write the character itself, or both halves of its UTF-16 surrogate pair",
    )


class HugeInt:
    """A JSON integer with too many digits to convert (`parse_int` hook); reported with its path."""

    def __init__(self, digits: str) -> None:
        self.digits = digits


def json_int(digits: str) -> int | HugeInt:
    """`parse_int` for json.loads: Python refuses to convert more than 4,300 digits (with a
    ValueError from deep inside the parser), and anything over 20 is out of range anyway."""
    return int(digits) if len(digits) <= 20 else HugeInt(digits)


class _Duplicated(dict[str, Any]):
    """A parsed JSON object that had a key twice (Python's json would keep the last one silently);
    `value_problem` reports it with its path."""

    duplicate: str = ""


def json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads that marks objects with duplicate keys."""
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    marked = _Duplicated(result)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            marked.duplicate = key
            break
        seen.add(key)
    return marked
