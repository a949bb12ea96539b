"""The JSON API: every CLI verb is one registered function here (Clan's `@API.register`).

Each function lives in the module of its concept (`pyclan.api.machines`, `…vars`, `…deploy`,
…), takes JSON-able, typed parameters (`flake` is the clan directory; None means the current
one) and returns a typed result (a dataclass or pydantic model). The CLI calls the same
function and, with `--json`, prints exactly what `call()` returns as `data`, so both faces
always agree. `describe()` gives every function's parameter and result JSON Schema.

Importing this package is cheap: the concept modules are imported when a function is used.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pyclan.errors import ClanError, Problem

F = TypeVar("F", bound=Callable[..., Any])
REGISTRY: dict[str, Callable[..., Any]] = {}

# Where the registered functions live; `load_all()` imports them for `api list` and `api call`.
MODULES = (
    "pyclan.api.clan",
    "pyclan.api.machines",
    "pyclan.api.services",
    "pyclan.api.inventory",
    "pyclan.api.vars",
    "pyclan.api.inputs",
    "pyclan.api.deploy",
    "pyclan.api.hosts",
    "pyclan.api.backups",
    "pyclan.api.network",
    "pyclan.api.instances",
    "pyclan.api.settings",
)

# Parameters the CLI passes but the JSON schema does not show (callbacks, not data).
HIDDEN_PARAMETERS = frozenset({"progress", "notify"})


def register(fn: F) -> F:
    if fn.__name__ in REGISTRY:
        raise RuntimeError(f"Function {fn.__name__} already registered")
    if not inspect.getdoc(fn):
        raise RuntimeError(f"API function {fn.__name__} needs a docstring")
    REGISTRY[fn.__name__] = fn
    return fn


def load_all() -> dict[str, Callable[..., Any]]:
    for module in MODULES:
        importlib.import_module(module)
    return REGISTRY


def __getattr__(name: str) -> Any:
    """`pyclan.api.list_machines` etc.: the registered function, its module imported on demand."""
    if name.startswith("__"):
        raise AttributeError(name)
    if name not in REGISTRY:
        load_all()
    try:
        return REGISTRY[name]
    except KeyError:
        raise AttributeError(f"module 'pyclan.api' has no attribute {name!r}") from None


# -- JSON encoding ---------------------------------------------------------------------------


def _default(value: Any) -> Any:
    """What orjson cannot encode itself: pydantic models, Paths, tuples and sets."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode(value: Any, pretty: bool = False) -> bytes:
    """The JSON bytes of an API value: compact by default (fast), indented when `pretty`.

    Dataclasses become objects with every field (None as null, as the result schema says).
    """
    import orjson

    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if pretty else 0)
    return orjson.dumps(value, default=_default, option=option)


def to_jsonable(value: Any) -> Any:
    """The plain JSON value (dicts, lists, str, numbers) of an API result."""
    import orjson

    return orjson.loads(encode(value))


# -- calling ---------------------------------------------------------------------------------


def call(name: str, args: dict[str, Any], callbacks: dict[str, Callable[..., Any]] | None = None) -> dict[str, Any]:
    """Call a registered function with JSON arguments; never raises for user errors.

    `callbacks` fills hidden parameters (`progress`) for callers in Python (`pyclan serve`'s tasks).
    Returns `{"status": "success", "op": name, "data": …}` or `{"status": "error", "errors": […]}`.
    """
    fn = REGISTRY.get(name) or load_all().get(name)
    if fn is None:
        from pyclan.errors import did_you_mean

        return error_envelope(
            [Problem("usage-error", name, f"no API function named {name!r}", hint=did_you_mean(name, REGISTRY))]
        )
    hidden = HIDDEN_PARAMETERS & set(args)
    if hidden:
        return error_envelope([Problem("usage-error", name, f"{sorted(hidden)[0]!r} is not a JSON argument")])
    try:
        bound = inspect.signature(fn).bind(**args)
    except TypeError as exc:
        return error_envelope([Problem("usage-error", name, str(exc))])
    try:
        arguments = _validate_arguments(fn, bound.arguments)
        data = fn(**arguments, **{k: v for k, v in (callbacks or {}).items() if k in HIDDEN_PARAMETERS})
    except ClanError as err:
        from pyclan.api.common import with_positions

        return error_envelope(with_positions(err.problems, args.get("flake")))
    return {"status": "success", "op": name, "data": to_jsonable(data)}


def _validate_arguments(fn: Callable[..., Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """JSON arguments checked against the function's parameter types (an edge: validate here)."""
    from pydantic import TypeAdapter, ValidationError

    hints = typing.get_type_hints(fn)
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        try:
            out[key] = TypeAdapter(hints.get(key, Any)).validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ".".join([key, *(str(part) for part in first["loc"])])
            raise ClanError.single("usage-error", path, f"invalid argument {path!r}: {first['msg']}") from None
    return out


def error_envelope(problems: list[Problem]) -> dict[str, Any]:
    return {"status": "error", "errors": [p.to_json() for p in problems]}


# -- description -----------------------------------------------------------------------------


def describe() -> list[dict[str, Any]]:
    """Every function: name, doc, its parameters' and its result's JSON Schema."""
    from pydantic import TypeAdapter

    out = []
    for name, fn in sorted(load_all().items()):
        hints = typing.get_type_hints(fn)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for pname, param in inspect.signature(fn).parameters.items():
            if pname in HIDDEN_PARAMETERS:
                continue
            schema = TypeAdapter(hints.get(pname, Any)).json_schema()
            if param.default is inspect.Parameter.empty:
                required.append(pname)
            else:
                schema["default"] = to_jsonable(param.default)
            properties[pname] = schema
        parameters: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            parameters["required"] = required
        result = TypeAdapter(hints.get("return", Any)).json_schema(mode="serialization")
        out.append({"name": name, "doc": inspect.getdoc(fn), "parameters": parameters, "result": result})
    return out
