"""Priority and order wrappers of the module system, as plain JSON values (clan-semantics.md R5.3.10).

A settings value may be wrapped anywhere a value is allowed:

- ``{"_type": "override", "priority": P, "content": v}``: ``mkOverride P v``. Lower is stronger:
  ``mkForce`` = 50, a plain definition = 100, ``mkDefault`` = 1000, ``mkOptionDefault`` = 1500
  (interface defaults count as 1500 too).
- ``{"_type": "order", "priority": P, "content": v}``: ``mkOrder P v``; ``mkBefore`` = 500,
  ``mkAfter`` = 1500, unwrapped definitions 1000. Re-orders list concatenation.
- ``{"_type": "if", "condition": b, "content": v}``: ``mkIf b v``; a false condition drops the definition.
- ``{"_type": "merge", "contents": [v, ...]}``: ``mkMerge``; each element is a definition of its own.

The helpers return exactly these dicts, so they can be written to ``inventory.json`` or returned from
Python service code (for ``extendSettings``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

FORCE_PRIORITY: Final = 50
PLAIN_PRIORITY: Final = 100
DEFAULT_PRIORITY: Final = 1000
OPTION_DEFAULT_PRIORITY: Final = 1500

BEFORE_ORDER: Final = 500
PLAIN_ORDER: Final = 1000
AFTER_ORDER: Final = 1500

WRAPPER_TYPES: Final = frozenset({"override", "order", "if", "merge"})


def mk_override(priority: int, value: Any) -> dict[str, Any]:
    """``lib.mkOverride priority value``."""
    return {"_type": "override", "priority": priority, "content": value}


def mk_force(value: Any) -> dict[str, Any]:
    """``lib.mkForce value`` (priority 50): beats plain definitions."""
    return mk_override(FORCE_PRIORITY, value)


def mk_default(value: Any) -> dict[str, Any]:
    """``lib.mkDefault value`` (priority 1000): loses against plain definitions."""
    return mk_override(DEFAULT_PRIORITY, value)


def mk_option_default(value: Any) -> dict[str, Any]:
    """``lib.mkOptionDefault value`` (priority 1500, the same as an interface default)."""
    return mk_override(OPTION_DEFAULT_PRIORITY, value)


def mk_order(priority: int, value: Any) -> dict[str, Any]:
    """``lib.mkOrder priority value``."""
    return {"_type": "order", "priority": priority, "content": value}


def mk_before(value: Any) -> dict[str, Any]:
    """``lib.mkBefore value`` (order 500): goes first when lists concatenate."""
    return mk_order(BEFORE_ORDER, value)


def mk_after(value: Any) -> dict[str, Any]:
    """``lib.mkAfter value`` (order 1500): goes last when lists concatenate."""
    return mk_order(AFTER_ORDER, value)


def mk_if(condition: bool, value: Any) -> dict[str, Any]:
    """``lib.mkIf condition value``."""
    return {"_type": "if", "condition": condition, "content": value}


def mk_merge(values: Iterable[Any]) -> dict[str, Any]:
    """``lib.mkMerge [ ... ]``."""
    return {"_type": "merge", "contents": list(values)}


def wrapper_kind(value: Any) -> str | None:
    """The wrapper type of `value` (``"override"``, ``"order"``, ``"if"``, ``"merge"``) or None."""
    if isinstance(value, dict):
        kind = value.get("_type")
        if isinstance(kind, str) and kind in WRAPPER_TYPES:
            return kind
    return None


__all__ = [
    "AFTER_ORDER",
    "BEFORE_ORDER",
    "DEFAULT_PRIORITY",
    "FORCE_PRIORITY",
    "OPTION_DEFAULT_PRIORITY",
    "PLAIN_ORDER",
    "PLAIN_PRIORITY",
    "WRAPPER_TYPES",
    "mk_after",
    "mk_before",
    "mk_default",
    "mk_force",
    "mk_if",
    "mk_merge",
    "mk_option_default",
    "mk_order",
    "mk_override",
    "wrapper_kind",
]
