"""Where an inventory path is written: `file:line:column` for problems that only know the path.

Parsers give a line only for syntax errors; every later problem (unknown field, wrong type,
unknown machine in a role, …) knows its file and its inventory path. This module scans the
file's text once for the position of every key (TOML tables, dotted keys and inline tables;
JSON objects) and gives each such problem the line of that key, or of its nearest written
ancestor when the key itself is not in the file (a missing field: its parent). Best effort: a
problem it cannot place keeps its file and path, and nothing here ever raises.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from pyclan.errors import Problem

Positions = dict[str, tuple[int, int]]  # dotted key path → (line, column), both from 1

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LITERAL = re.compile(r"'([^']*)'")


def attach(problems: list[Problem], clan_dir: Path | None) -> list[Problem]:
    """The problems, each with a line (and column) where its path can be found in its file."""
    if clan_dir is None:
        return problems
    cache: dict[str, Positions | None] = {}
    out = []
    for p in problems:
        try:
            out.append(_locate(p, clan_dir, cache))
        except Exception:  # a position is a nicety: never let it hide the problem
            out.append(p)
    return out


def _locate(p: Problem, clan_dir: Path, cache: dict[str, Positions | None]) -> Problem:
    if p.line is not None or not p.file or not p.path:
        return p
    if p.file not in cache:
        cache[p.file] = _positions(clan_dir / p.file)
    found = cache[p.file]
    if not found:
        return p
    path = p.path
    while path:
        if path in found:
            line, column = found[path]
            return replace(p, line=line, column=column)
        path = path.rpartition(".")[0]
    return p


def _positions(file: Path) -> Positions | None:
    if not file.is_file() or file.stat().st_size > 64 * 1024 * 1024:
        return None
    text = file.read_text(errors="replace")
    if file.suffix == ".toml":
        return toml_positions(text)
    if file.suffix == ".json":
        return json_positions(text)
    return None


# -- TOML ------------------------------------------------------------------------------------


def _keys(text: str, start: int) -> tuple[list[str], int]:
    """A dotted key at `start` (bare, "basic" or 'literal' parts): its parts and where it ends."""
    parts: list[str] = []
    i = start
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        for pattern, unquote in ((_BASIC, True), (_LITERAL, False), (_BARE, False)):
            m = pattern.match(text, i)
            if m:
                raw = m.group(1) if pattern is not _BARE else m.group(0)
                parts.append(json.loads(f'"{raw}"') if unquote else raw)
                i = m.end()
                break
        else:
            return parts, i
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        return parts, i


def toml_positions(text: str) -> Positions:
    """Every table header and key of a TOML document, with its position.

    A line-based scan: `[table]` and `[[array]]` headers set the prefix, `key = value` lines add
    keys under it, and inline tables `{ a = 1, b.c = 2 }` on the same line add theirs.
    """
    found: Positions = {}
    prefix: list[str] = []
    in_string = ""  # inside a multi-line string: its delimiter
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = ""
            continue
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        for delimiter in ('"""', "'''"):
            if stripped.count(delimiter) % 2 == 1:
                in_string = delimiter
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            double = stripped.startswith("[[")
            parts, _ = _keys(stripped, 2 if double else 1)
            if parts:
                prefix = parts
                for depth in range(1, len(parts) + 1):
                    found.setdefault(".".join(parts[:depth]), (number, indent + 1))
            continue
        _inline(stripped, 0, prefix, number, indent, found)
    return found


def _inline(text: str, start: int, prefix: list[str], number: int, indent: int, found: Positions) -> None:
    """`key = value` at `start`, and the keys of an inline table value, recursively."""
    i = start
    while i < len(text):
        key_at = i
        while key_at < len(text) and text[key_at] in " \t":
            key_at += 1
        parts, end = _keys(text, i)
        rest = text[end:].lstrip()
        if not parts or not rest.startswith("="):
            return  # not a key: a continuation line of a multi-line value
        for depth in range(1, len(parts) + 1):
            found.setdefault(".".join([*prefix, *parts[:depth]]), (number, indent + key_at + 1))
        value_at = len(text) - len(rest) + 1
        value = text[value_at:].lstrip()
        value_at = len(text) - len(value)
        if value.startswith("{"):
            _inline(text, value_at + 1, [*prefix, *parts], number, indent, found)
        # the next key of an enclosing inline table comes after this value's comma
        depth, j, quote = 0, value_at, ""
        while j < len(text):
            ch = text[j]
            if quote:
                quote = "" if ch == quote and text[j - 1] != "\\" else quote
            elif ch in "\"'":
                quote = ch
            elif ch in "{[":
                depth += 1
            elif ch in "}]":
                if depth == 0:
                    return
                depth -= 1
            elif ch == "," and depth == 0:
                break
            j += 1
        else:
            return
        i = j + 1


# -- JSON ------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def json_positions(text: str) -> Positions:
    """Every object key of a JSON document (and array index), with its position."""
    found: Positions = {}
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    stack: list[tuple[str, list[str], int]] = []  # (container, path of it, next array index)
    path: list[str] = []
    key: str | None = None
    expect_key = False

    def where(offset: int) -> tuple[int, int]:
        lo, hi = 0, len(line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1, offset - line_starts[lo] + 1

    for m in _JSON_TOKEN.finditer(text):
        tok = m.group(0)
        if tok == "{":
            base = _value_path(stack, path, key)
            stack.append(("{", base, 0))
            expect_key, key = True, None
        elif tok == "[":
            base = _value_path(stack, path, key)
            stack.append(("[", base, 0))
            key = None
        elif tok in "}]":
            if stack:
                stack.pop()
            key = None
            expect_key = False
        elif tok == ",":
            if stack and stack[-1][0] == "{":
                expect_key = True
            elif stack:
                kind, base, index = stack[-1]
                stack[-1] = (kind, base, index + 1)
            key = None
        elif tok == ":":
            expect_key = False
        elif expect_key and tok.startswith('"') and stack:
            key = json.loads(tok)
            full = ".".join([*stack[-1][1], key])
            found.setdefault(full, where(m.start()))
    return found


def _value_path(stack: list[tuple[str, list[str], int]], path: list[str], key: str | None) -> list[str]:
    if not stack:
        return list(path)
    kind, base, index = stack[-1]
    if kind == "{":
        return [*base, key] if key is not None else list(base)
    return [*base, str(index)]
