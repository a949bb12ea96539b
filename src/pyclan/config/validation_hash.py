"""The validation hash of a generator: stored values are outdated when the definition changes (R12.4).

Clan hashes only `validation`; pyclan hashes everything that decides what the values are:
file names and whether each is secret, prompts (type, persist), dependencies, the script text,
runtime inputs, `validation`, and for a Python `run` its qualified name plus its source (or,
without source, its bytecode and constants), defaults and simple closure values.

Deliberately not hashed: a file's owner, group, mode, `neededFor` and `deploy`. They decide
where and for whom a value is placed, not the value; changing them must not rotate keys
(a changed `deploy` re-encrypts instead). Prompt descriptions are cosmetic and not hashed either.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import textwrap
import types
from collections.abc import Callable
from typing import Any

from pyclan.config.generators import Generator

_SIMPLE = (str, int, float, bool, type(None))


def _plain(value: Any, depth: int = 0) -> Any:
    """A JSON-able, run-to-run stable picture of a value (never a memory address)."""
    if isinstance(value, _SIMPLE):
        return value
    if isinstance(value, bytes):
        return {"bytes": hashlib.sha256(value).hexdigest()}
    if depth < 4 and isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v, depth + 1) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if depth < 4 and isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if callable(value):
        return _callable(value, depth + 1)
    model_dump = getattr(value, "model_dump", None)
    if depth < 4 and callable(model_dump):  # pydantic settings captured by a closure
        return {"model": type(value).__qualname__, "data": _plain(model_dump(mode="json"), depth + 1)}
    return {"type": f"{type(value).__module__}.{type(value).__qualname__}"}


def _code(code: types.CodeType) -> str:
    h = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        h.update((_code(const) if isinstance(const, types.CodeType) else repr(const)).encode())
    h.update(repr(code.co_names).encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=1024)
def _source(code: types.CodeType) -> str | None:
    """Source text of a function (cached: a 100-machine clan shares one `run`)."""
    try:
        return textwrap.dedent(inspect.getsource(code)).strip()
    except (OSError, TypeError):
        return None


def _callable(fn: Callable[..., Any], depth: int = 0) -> Any:
    if depth > 4:
        return {"callable": getattr(fn, "__qualname__", type(fn).__qualname__)}
    if isinstance(fn, functools.partial):
        return {
            "partial": _callable(fn.func, depth + 1),
            "args": _plain(list(fn.args), depth + 1),
            "keywords": _plain(dict(fn.keywords), depth + 1),
        }
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    out: dict[str, Any] = {"name": f"{getattr(fn, '__module__', '?')}.{qualname}"}
    code = getattr(fn, "__code__", None)
    if isinstance(code, types.CodeType):
        source = _source(code)
        if source is not None:
            out["source"] = source
        else:
            out["code"] = _code(code)
    else:  # a callable object (e.g. a dataclass instance): its class's __call__ and its fields
        out["call"] = _plain(type(fn).__call__, depth + 1)
        state = getattr(fn, "__dict__", None)
        if state:
            out["state"] = _plain(dict(state), depth + 1)
    defaults = getattr(fn, "__defaults__", None)
    if defaults:
        out["defaults"] = _plain(list(defaults), depth + 1)
    closure = getattr(fn, "__closure__", None)
    if closure:
        names = fn.__code__.co_freevars  # type: ignore[attr-defined]
        cells: dict[str, Any] = {}
        for name, cell in zip(names, closure, strict=False):
            try:
                cells[name] = _plain(cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                cells[name] = None
        out["closure"] = cells
    return out


def definition(gen: Generator) -> dict[str, Any]:
    """The hashed picture of a generator (also shown by `vars check --json` when outdated)."""
    return {
        "name": gen.name,
        "share": gen.share,
        "files": {f: {"secret": vf.secret} for f, vf in sorted(gen.files.items())},
        "prompts": {p: {"type": pr.type, "persist": pr.persist} for p, pr in sorted(gen.prompts.items())},
        "dependencies": sorted(gen.dependencies),
        "script": gen.script,
        "run": _callable(gen.run) if gen.run is not None else None,
        "runtimeInputs": sorted(gen.runtime_inputs),
        "validation": _plain(gen.validation),
    }


def validation_hash(gen: Generator) -> str:
    canonical = json.dumps(definition(gen), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
