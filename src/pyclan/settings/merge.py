"""The settings merge engine (clan-semantics.md §5).

For one (instance, role, machine) the effective settings of a role come from sibling definitions:
the role-wide block, the per-machine block and one block per matching tag (R5.1). They merge like
definitions in the Nix module system (R5.3), then the role's pydantic interface validates the result
and fills in defaults:

- priorities (`mk_force` 50 < plain 100 < `mk_default` 1000 < interface default 1500) are global
  across blocks; only the strongest definitions of an option are kept, lists included;
- scalars must agree, otherwise a ``conflict`` naming every definition;
- lists concatenate in reverse definition order (tags in reverse name order, machine, role), then
  ``mk_before``/``mk_after`` re-order;
- ``dict[str, X]`` and nested models merge key by key, recursively; ``Any`` merges attribute sets and
  requires everything else to be equal;
- defaults apply only when an option has no definition;
- undeclared keys, type mismatches and missing required options are problems with the full
  evaluation path; all problems of a merge are reported together.

Speed: a per-interface plan (`pyclan.settings.nixtypes`) is built once. Plain blocks are united with
``dict.update``; only options defined in several blocks are merged one by one, then a single
pydantic validation runs (mutable defaults of unset options are passed in as JSON, which is several
times cheaper than pydantic's deep copy). Anything unusual (wrappers on options defined once,
unknown keys, type errors) takes the general merge, which also explains every problem.
`SettingsMerger` additionally memoises successful results by the identity of the definition values.

Results may be shared (between machines with identical definitions, and with the input values for
``Any`` options): treat them as read-only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from pyclan.errors import ClanError, Problem, did_you_mean
from pyclan.settings import nixtypes as nt
from pyclan.settings.nixtypes import (
    ANYTHING_PLAN,
    AttrsPlan,
    EnumPlan,
    FieldPlan,
    ListPlan,
    ModelPlan,
    NullablePlan,
    TypePlan,
    UnionPlan,
    json_kind,
    model_plan,
)
from pyclan.settings.overrides import (
    OPTION_DEFAULT_PRIORITY,
    PLAIN_ORDER,
    PLAIN_PRIORITY,
    WRAPPER_TYPES,
    mk_after,
    mk_before,
    mk_default,
    mk_force,
    mk_if,
    mk_merge,
    mk_option_default,
    mk_order,
    mk_override,
)

M = TypeVar("M", bound=BaseModel)

UNKNOWN_FILE: Final = "<unknown-file>"
CONFLICT_HINT: Final = (
    "give the definition that should win a stronger priority with mkForce "
    '({"_type": "override", "priority": 50, "content": ...}), or make the others weaker with mkDefault '
    '({"_type": "override", "priority": 1000, "content": ...})'
)


@dataclass(frozen=True)
class SettingsDef:
    """One settings block, as written in the inventory."""

    value: Any  # raw JSON value of the block (should be a dict)
    source: str  # inventory path of the block, e.g. "instances.vpn.roles.peer.machines.jon.settings"
    file: str | None = None  # e.g. "clan.toml" / "inventory.json"


# --------------------------------------------------------------------------------------------------
# Public API


class SettingsMerger:
    """Merges settings definitions; with ``cache=True`` memoises successful results.

    The memo key is ``(interface, ids of the non-empty definition values)``: callers must keep the
    definition values alive and must not mutate them while the merger is in use. Failures are not
    cached (their paths differ per machine). Cached models are shared: treat them as read-only.
    """

    def __init__(self, cache: bool = True, max_entries: int = 1_000_000) -> None:
        self._cache: dict[tuple[Any, ...], BaseModel] | None = {} if cache else None
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        if self._cache is not None:
            self._cache.clear()

    def merge(
        self, interface: type[M], defs: Sequence[SettingsDef], path: str, file: str | None = None
    ) -> tuple[M | None, list[Problem]]:
        """Merge `defs` (in definition order: role, machine, tags by name) and validate."""
        return self._merge(interface, defs, path, file, self._cache)

    def _merge(
        self,
        interface: type[M],
        defs: Sequence[SettingsDef],
        path: str,
        file: str | None,
        cache: dict[tuple[Any, ...], BaseModel] | None,
    ) -> tuple[M | None, list[Problem]]:
        # `{}` blocks (the usual machine block) define nothing: leave them out (also of the memo key).
        values = [v for d in defs if (v := d.value) or v.__class__ is not dict]
        if cache is not None:
            key = (interface, *map(id, values))
            hit = cache.get(key)
            if hit is not None:
                self.hits += 1
                return hit, []  # type: ignore[return-value]
            self.misses += 1
        plan = _MODEL_PLANS.get(interface) or model_plan(interface)
        result = _fast_merge(plan, interface, values, defs)
        if result is None:
            result, problems = _slow_merge(plan, interface, defs, path, file)
            if result is None:
                return None, problems
        if cache is not None:
            if len(cache) >= self.max_entries:
                cache.clear()
            cache[key] = result
        return result, []

    def extend(
        self,
        interface: type[M],
        defs: Sequence[SettingsDef],
        extra: Any,
        path: str,
        file: str | None = None,
        source: str = "extendSettings",
    ) -> M:
        """R5.5 ``extendSettings``: merge with one more definition appended; raise `ClanError` on problems."""
        # Never memoised: `extra` is usually a temporary dict, and a recycled id would give a stale hit.
        result, problems = self._merge(interface, [*defs, SettingsDef(extra, source, file)], path, file, None)
        if result is None:
            raise ClanError(problems)
        return result


_UNCACHED: Final = SettingsMerger(cache=False)


def merge_settings(
    interface: type[M], defs: Sequence[SettingsDef], path: str, file: str | None = None
) -> tuple[M | None, list[Problem]]:
    """Merge settings blocks and validate them against `interface`.

    `defs` are in definition order ``[role, machine, tag_1, tag_2, ...]`` (tags sorted by name, only
    those that apply). `path` is the evaluation prefix for error paths, e.g.
    ``instances.my-vpn.roles.peer.machines.laptop.settings``; `file` is used for definitions without
    a file of their own. Returns ``(model, [])`` or ``(None, problems)`` with every problem found.
    """
    return _UNCACHED.merge(interface, defs, path, file)


def extend_settings(
    interface: type[M],
    defs: Sequence[SettingsDef],
    extra: Any,
    path: str,
    file: str | None = None,
    source: str = "extendSettings",
) -> M:
    """R5.5: the settings of `defs` extended by one more definition `extra`; raises `ClanError`.

    ``extra`` is a settings block like any other (appended after the tags, so its list items come
    first); priorities apply as usual: ``{"user": mk_option_default("alice")}`` only fills in a value
    when nothing else defines ``user``, ``{"timeout": mk_override(10, "x")}`` beats plain values.
    """
    return _UNCACHED.extend(interface, defs, extra, path, file, source)


def settings_schema(interface: type[BaseModel]) -> dict[str, Any]:
    """R5.7: the JSON schema of a settings interface (pydantic, validation mode).

    Options with an empty value (R5.3.9: lists, attribute sets, nullable options, submodules) are
    not required, whatever pydantic says, and show that empty value as their default.
    """
    schema = interface.model_json_schema(mode="validation")
    return nt.annotate_schema(_MODEL_PLANS.get(interface) or model_plan(interface), schema)


# --------------------------------------------------------------------------------------------------
# Fast path

_MODEL_PLANS: Final = nt._MODEL_PLANS


def _fast_merge(plan: ModelPlan, interface: type[M], values: list[Any], defs: Sequence[SettingsDef] = ()) -> M | None:
    """The common cases, or None to take the general merge (which also explains every problem).

    Blocks that are plain dicts are united with ``dict.update``. Options defined in one block only
    are taken as they are; options defined in several blocks (with `defs` given) are merged on
    their own. The result must be clean (no wrappers or unknown keys left), then one ``validate``.
    """
    n = len(values)
    if n == 0:
        candidate: Any = {}
    elif n == 1:
        candidate = values[0]
        if candidate.__class__ is not dict:
            return None
    else:
        candidate = {}
        total = 0
        for v in values:
            if v.__class__ is not dict:
                return None
            candidate.update(v)
            total += len(v)
        # some option is defined in several blocks
        if len(candidate) != total and not (defs and _merge_shared_options(plan, candidate, values, defs)):
            return None
    if "imports" in candidate or not plan.clean(candidate):
        return None
    try:
        return _validate(plan, interface, candidate, n != 1)
    except ValidationError:
        return None


def _merge_shared_options(
    plan: ModelPlan, candidate: dict[str, Any], values: list[Any], defs: Sequence[SettingsDef]
) -> bool:
    """Replace the options of `candidate` defined in several blocks by their merge; False on problems."""
    seen = set(values[0])
    shared: set[str] = set()
    for v in values[1:]:
        shared |= seen.intersection(v)
        seen.update(v)
    fields = plan.fields
    ctx = _Ctx(defs, "", None)
    for key in shared:
        field = fields.get(key)
        if field is None:
            return False  # unknown or non-canonical key, or a freeform extra: general merge
        ds: list[Def] = []
        for o in range(len(defs) - 1, -1, -1):  # reverse block order, as in `_slow_merge` (R5.3.3)
            v = defs[o].value
            if v.__class__ is dict and key in v:
                ds.append((o, key, v[key]))
        r = _merge_option(ctx, field.plan, ds, key, field)
        if ctx.problems:
            return False
        if r is _ABSENT:
            del candidate[key]
        else:
            candidate[key] = r
    return True


def _validate(plan: ModelPlan, interface: type[M], value: dict[str, Any], own: bool) -> M:
    """``model_validate`` without its Python-level overhead.

    Lax mode, because the plan has already checked types strictly and lax mode is what turns JSON
    values into enum members. Mutable defaults of absent options are passed in as JSON templates
    (see `nixtypes.default_injections`); `value` is copied first unless `own`.
    """
    inject = plan.inject
    if inject is None:
        inject = nt.default_injections(plan)
    added: list[str] | None = None
    fills = plan.fills
    if fills is None:
        fills = nt.needs_fill(plan)
    if fills:  # R5.3.9: options without default or definition take their type's empty value
        filled = nt.fill_empty(plan, value)
        if filled is not value:
            added = [name for key, name, _make in plan.empties if key not in value]
            value = filled
            own = True
    for key, name, template in inject:
        if key not in value:
            if added is None:
                added = []
                if not own:
                    value = dict(value)
            value[key] = template
            added.append(name)
    validator = interface.__pydantic_validator__
    if plan.strict_config:
        result: M = validator.validate_python(value, strict=False)
    else:
        result = validator.validate_python(value)
    if added is not None:
        result.__pydantic_fields_set__.difference_update(added)
    return result


# --------------------------------------------------------------------------------------------------
# General merge

Def = tuple[int, str, Any]  # (index of the SettingsDef or -1 for an interface default, location, value)
_Flat = tuple[int, int, int, str, Any]  # (priority, order, origin, location, value)


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_ABSENT: Final = _Marker("ABSENT")  # no definition survived (all mkIf false, or the default wins)
_FAIL: Final = _Marker("FAIL")  # a problem was reported


def _child(rel: str, key: str) -> str:
    return f"{rel}.{key}" if rel else key


def _show(v: Any, limit: int = 300) -> str:
    try:
        text = json.dumps(v, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_KIND_NAMES: Final[dict[Any, str]] = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "a list",
    dict: "an attribute set",
}


def _found(v: Any) -> str:
    if isinstance(v, dict) and nt._is_wrapper_dict(v):
        return f"a {v['_type']} wrapper"
    return _KIND_NAMES.get(json_kind(v), type(v).__name__)


class _Ctx:
    """State of one general merge: the definitions, the path prefix, the problems found."""

    __slots__ = ("defs", "failed", "file", "list_defs", "list_origins", "path", "problems")

    def __init__(self, defs: Sequence[SettingsDef], path: str, file: str | None) -> None:
        self.defs = defs
        self.path = path
        self.file = file
        self.problems: list[Problem] = []
        self.failed: set[str] = set()  # relative paths with a reported problem
        # merged lists: relative path -> (list plan, its definitions), to explain errors about entries
        self.list_defs: dict[str, tuple[ListPlan, list[Def]]] = {}
        self.list_origins: dict[str, list[Def]] = {}  # relative path -> origin of each entry (lazily)

    def full(self, rel: str) -> str:
        if not rel:
            return self.path
        if not self.path:
            return rel
        return f"{self.path}{rel}" if rel.startswith("[") else f"{self.path}.{rel}"

    def file_of(self, origin: int) -> str | None:
        if origin >= 0:
            return self.defs[origin].file or self.file
        return self.file

    def loc(self, origin: int, lr: str) -> str:
        if origin < 0:
            return lr
        d = self.defs[origin]
        src = d.source or self.path
        if lr:
            src = f"{src}{lr}" if lr.startswith("[") or not src else f"{src}.{lr}"
        if src.startswith("instances."):  # Clan names inventory definitions by their option path
            src = f"inventory.{src}"
        return f"{d.file or self.file or UNKNOWN_FILE}, via option {src}"

    def show_defs(self, defs: Sequence[Def], found: bool = False) -> str:
        ordered = sorted(defs, key=lambda d: d[0] if d[0] >= 0 else -1)
        lines = []
        for o, lr, v in ordered:
            line = f"- In `{self.loc(o, lr)}': {_show(v)}"
            if found:
                line += f" ({_found(v)})"
            lines.append(line)
        return "\n".join(lines)

    def first_file(self, defs: Sequence[Def]) -> str | None:
        origins = [d[0] for d in defs if d[0] >= 0]
        return self.file_of(min(origins)) if origins else self.file

    def add(
        self, kind: str, rel: str, message: str, file: str | None, hint: str | None = None, path: str | None = None
    ) -> None:
        if path is None:
            self.failed.add(rel)
        self.problems.append(Problem(kind, path if path is not None else self.full(rel), message, file, hint))

    # -- specific problems

    def type_error(self, plan: TypePlan, rel: str, bad: Sequence[Def]) -> None:
        full = self.full(rel)
        self.add(
            "settings-type",
            rel,
            f"A definition for option `{full}' is not of type `{plan.description}'. "
            f"Definition values:\n{self.show_defs(bad, found=True)}",
            self.first_file(bad),
        )

    def conflict(self, rel: str, defs: Sequence[Def], what: str = "conflicting definition values") -> None:
        full = self.full(rel)
        self.add(
            "conflict",
            rel,
            f"The option `{full}' has {what}:\n{self.show_defs(defs)}",
            self.first_file(defs),
            CONFLICT_HINT,
        )

    def unknown(self, plan: ModelPlan, rel: str, key: str, defs: Sequence[Def]) -> None:
        full = self.full(_child(rel, key))
        hint = did_you_mean(key, plan.fields)
        if hint is None:
            hint = (
                ("known settings: " + ", ".join(sorted(plan.fields))) if plan.fields else ("this role has no settings")
            )
        self.add(
            "unknown-setting",
            _child(rel, key),
            f"The option `{full}' does not exist. Definition values:\n{self.show_defs(defs)}",
            self.first_file(defs),
            hint,
        )

    def bad_wrapper(self, origin: int, lr: str, rel: str, v: Any, why: str) -> None:
        full = self.full(rel)
        self.add(
            "settings-type",
            rel,
            f"A definition for option `{full}' has a malformed {v.get('_type')} wrapper ({why}). "
            f"Definition values:\n- In `{self.loc(origin, lr)}': {_show(v)}",
            self.file_of(origin),
            'write {"_type": "override", "priority": 50, "content": ...}, '
            '{"_type": "order", "priority": 500, "content": ...}, '
            '{"_type": "if", "condition": true, "content": ...} or {"_type": "merge", "contents": [...]}',
            # a broken block is reported at the block, and is no option: keep validating the rest
            path=None if rel else (self.defs[origin].source or self.path),
        )


def _discharge(
    ctx: _Ctx, origin: int, lr: str, v: Any, prio: int | None, order: int | None, out: list[_Flat], rel: str
) -> None:
    """Unwrap mkMerge/mkIf/mkOverride/mkOrder around one definition (any nesting; outermost wins)."""
    while isinstance(v, dict):
        kind = v.get("_type")
        if not isinstance(kind, str) or kind not in WRAPPER_TYPES:
            break
        if kind == "merge":
            contents = v.get("contents")
            if not isinstance(contents, list):
                ctx.bad_wrapper(origin, lr, rel, v, "`contents' must be a list")
                return
            for x in contents:
                _discharge(ctx, origin, lr, x, prio, order, out, rel)
            return
        if "content" not in v:
            ctx.bad_wrapper(origin, lr, rel, v, "no `content'")
            return
        if kind == "if":
            cond = v.get("condition")
            if cond is not True and cond is not False:
                ctx.bad_wrapper(origin, lr, rel, v, "`condition' must be a boolean")
                return
            if not cond:
                return
        else:
            p = v.get("priority")
            if not nt._is_int(p):
                ctx.bad_wrapper(origin, lr, rel, v, "`priority' must be an integer")
                return
            if kind == "override":
                if prio is None:
                    prio = p
            elif order is None:
                order = p
        v = v["content"]
    out.append((PLAIN_PRIORITY if prio is None else prio, PLAIN_ORDER if order is None else order, origin, lr, v))


def _merge_option(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str, field: FieldPlan | None) -> Any:
    """mergeDefinitions: discharge wrappers, keep the strongest priority, order, merge by type."""
    flat: list[_Flat] = []
    wrapped = False
    for o, lr, v in defs:
        if isinstance(v, dict) and "_type" in v and nt._is_wrapper_dict(v):
            _discharge(ctx, o, lr, v, None, None, flat, rel)
            wrapped = True
        else:
            flat.append((PLAIN_PRIORITY, PLAIN_ORDER, o, lr, v))
    if not wrapped:
        return _merge_value(ctx, plan, defs, rel)
    if not flat:
        return _ABSENT
    best = min(f[0] for f in flat)
    if best >= OPTION_DEFAULT_PRIORITY and field is not None and field.has_default:
        if best > OPTION_DEFAULT_PRIORITY:
            return _ABSENT  # the interface default (1500) is stronger: pydantic fills it in
        flat.insert(0, (OPTION_DEFAULT_PRIORITY, PLAIN_ORDER, -1, field.default_label, field.default_json()))
    winners = [f for f in flat if f[0] == best]
    if any(f[1] != PLAIN_ORDER for f in winners):
        winners.sort(key=lambda f: f[1])  # stable
    return _merge_value(ctx, plan, [(f[2], f[3], f[4]) for f in winners], rel)


def _merge_value(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    """Type-check the winning definitions (Nix: `type.check`), then merge them (`type.merge`)."""
    if len(defs) == 1 and plan.clean(defs[0][2]):
        return defs[0][2]
    shallow = plan.shallow
    bad = [d for d in defs if not shallow(d[2])]
    if bad:
        ctx.type_error(plan, rel, bad)
        return _FAIL
    return _MERGERS[plan.kind](ctx, plan, defs, rel)


def _merge_equal(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    first = defs[0][2]
    for d in defs[1:]:
        if d[2] != first:
            ctx.conflict(rel, defs)
            return _FAIL
    return first


def _merge_enum(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    assert isinstance(plan, EnumPlan)
    cls = plan.enum_cls
    if cls is not None:
        defs = [(o, lr, v.value if isinstance(v, cls) else v) for o, lr, v in defs]
    return _merge_equal(ctx, plan, defs, rel)


def _merge_strict_equal(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    first = defs[0][2]
    for d in defs[1:]:
        if not _json_equal(d[2], first):
            ctx.conflict(rel, defs)
            return _FAIL
    return first


def _json_equal(a: Any, b: Any) -> bool:
    """Nix `==` on JSON values: no bool/int confusion; int and float compare by value."""
    ka, kb = json_kind(a), json_kind(b)
    if ka is dict:
        return kb is dict and a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if ka is list:
        return kb is list and len(a) == len(b) and all(map(_json_equal, a, b))
    if ka is int or ka is float:
        return (kb is int or kb is float) and bool(a == b)
    if ka is None or kb is None:
        return bool(a == b)
    return ka is kb and bool(a == b)


def _merge_nullable(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    assert isinstance(plan, NullablePlan)
    nulls = sum(1 for d in defs if d[2] is None)
    if nulls == len(defs):
        return None
    if nulls:
        ctx.conflict(rel, defs, "definitions that are both null and not null")
        return _FAIL
    return _MERGERS[plan.inner.kind](ctx, plan.inner, defs, rel)


def _merge_union(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    assert isinstance(plan, UnionPlan)
    for alt in plan.alts:
        if all(alt.shallow(d[2]) for d in defs):
            return _merge_value(ctx, alt, defs, rel)
    first = defs[0][2]
    if all(_json_equal(d[2], first) for d in defs[1:]):
        for alt in plan.alts:
            if alt.shallow(first):
                return _merge_value(ctx, alt, defs[:1], rel)
    ctx.conflict(rel, defs)
    return _FAIL


def _merge_list(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    assert isinstance(plan, ListPlan)
    elem = plan.elem
    elem_clean = elem.clean
    list_clean = plan.clean
    out: list[Any] = []
    i = 0  # index in the concatenation (error paths), counting entries that fail or are dropped
    for o, lr, v in defs:
        if list_clean(v):
            out.extend(v)
            i += len(v)
            continue
        for j, x in enumerate(v):
            if elem_clean(x):
                out.append(x)
            else:
                r = _merge_option(ctx, elem, [(o, f"{lr}[{j}]", x)], f"{rel}[{i}]", None)
                if r is not _FAIL and r is not _ABSENT:
                    out.append(r)
            i += 1
    ctx.list_defs[rel] = (plan, defs)
    return out


def _list_entry_origin(ctx: _Ctx, list_rel: str, index: int) -> Def | None:
    """The definition of entry `index` of a merged list (for messages only).

    The list merge is replayed once per list and its entries' origins kept, so that explaining
    thousands of bad entries stays linear.
    """
    origins = ctx.list_origins.get(list_rel)
    if origins is None:
        found = ctx.list_defs.get(list_rel)
        if found is None:
            return None
        plan, defs = found
        scratch = _Ctx(ctx.defs, ctx.path, ctx.file)
        elem = plan.elem
        origins = []
        for o, lr, v in defs:
            for j, x in enumerate(v):
                if elem.clean(x) or _merge_option(scratch, elem, [(o, lr, x)], "", None) not in (_FAIL, _ABSENT):
                    origins.append((o, f"{lr}[{j}]", x))
        ctx.list_origins[list_rel] = origins
    return origins[index] if 0 <= index < len(origins) else None


def _merge_attrs(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    assert isinstance(plan, AttrsPlan)
    return _merge_attrs_of(ctx, plan.elem, defs, rel)


def _merge_attrs_of(ctx: _Ctx, elem: TypePlan, defs: list[Def], rel: str) -> dict[str, Any]:
    groups: dict[str, list[Def]] = {}
    for o, lr, v in defs:
        for k, x in v.items():
            groups.setdefault(k, []).append((o, _child(lr, k), x))
    out: dict[str, Any] = {}
    for k, ds in groups.items():
        r = _merge_option(ctx, elem, ds, _child(rel, k), None)
        if r is not _FAIL and r is not _ABSENT:
            out[k] = r
    return out


def _merge_model(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    """A submodule inside the settings: each submodule level reverses the order of its definitions
    once more (R5.3.3). The settings themselves concatenate in reverse block order (`_slow_merge`),
    a submodule in them in definition order, a submodule in that in reverse order, and so on."""
    return _merge_options(ctx, plan, defs[::-1], rel)


def _merge_options(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    """Merge a submodule's definitions (in the order given) option by option."""
    assert isinstance(plan, ModelPlan)
    lookup = plan.lookup
    # Group by option, remembering the *parent* location: most options have a single clean
    # definition and never need their location string.
    groups: dict[str, list[Def]] = {}
    others: dict[str, list[Def]] = {}  # undeclared keys (freeform extras or unknown)
    for o, lr, v in defs:
        for k, x in v.items():
            f = lookup.get(k)
            if f is not None:
                if f.key != k:
                    x = _Renamed(k, x)
                g = groups.get(f.key)
                if g is None:
                    groups[f.key] = [(o, lr, x)]
                else:
                    g.append((o, lr, x))
            else:
                g = others.get(k)
                if g is None:
                    others[k] = [(o, lr, x)]
                else:
                    g.append((o, lr, x))
    out: dict[str, Any] = {}
    fields = plan.fields
    exact = plan.exact
    cleans = plan.cleans
    for key, ds in groups.items():
        if len(ds) == 1:
            x = ds[0][2]
            e = exact.get(key)
            if (e is not None and x.__class__ in e) or (x.__class__ is not _Renamed and cleans[key](x)):
                out[key] = x
                continue
        f = fields[key]
        r = _merge_option(ctx, f.plan, _located(ds, key), _child(rel, key), f)
        if r is not _FAIL and r is not _ABSENT:
            out[key] = r
    extra = plan.extra
    for k, ds in others.items():
        if extra is None:
            ctx.unknown(plan, rel, k, _located(ds, k))
            continue
        r = _merge_option(ctx, extra, _located(ds, k), _child(rel, k), None)
        if r is not _FAIL and r is not _ABSENT:
            out[k] = r
    return out


class _Renamed:
    """A definition written under a field's other accepted name (alias vs. name); keeps the spelling."""

    __slots__ = ("key", "value")

    def __init__(self, key: str, value: Any) -> None:
        self.key = key
        self.value = value


def _located(ds: list[Def], key: str) -> list[Def]:
    """Definitions of option `key`, given with their parent's location: add the key to the location."""
    out: list[Def] = []
    for o, lr, x in ds:
        if x.__class__ is _Renamed:
            out.append((o, _child(lr, x.key), x.value))
        else:
            out.append((o, _child(lr, key), x))
    return out


def _merge_anything(ctx: _Ctx, plan: TypePlan, defs: list[Def], rel: str) -> Any:
    kinds = {json_kind(d[2]) for d in defs}
    if kinds == {dict}:
        return _merge_attrs_of(ctx, ANYTHING_PLAN, defs, rel)
    if len(kinds) > 1 and not kinds <= {int, float}:
        ctx.conflict(rel, defs, "conflicting option types (definitions of different types)")
        return _FAIL
    return _merge_strict_equal(ctx, plan, defs, rel)


_Merger = Callable[[_Ctx, TypePlan, list[Def], str], Any]
_MERGERS: Final[tuple[_Merger, ...]] = tuple(
    {
        nt.STR: _merge_equal,
        nt.INT: _merge_equal,
        nt.FLOAT: _merge_equal,
        nt.BOOL: _merge_equal,
        nt.NULL: _merge_equal,
        nt.ENUM: _merge_enum,
        nt.NULLABLE: _merge_nullable,
        nt.UNION: _merge_union,
        nt.LIST: _merge_list,
        nt.ATTRS: _merge_attrs,
        nt.MODEL: _merge_model,
        nt.ANYTHING: _merge_anything,
        nt.OPAQUE: _merge_strict_equal,
    }[k]
    for k in range(nt.N_KINDS)
)


def _rewrap(prio: int, order: int, v: Any) -> Any:
    if order != PLAIN_ORDER:
        v = mk_order(order, v)
    if prio != PLAIN_PRIORITY:
        v = mk_override(prio, v)
    return v


def _slow_merge(
    plan: ModelPlan, interface: type[M], sdefs: Sequence[SettingsDef], path: str, file: str | None
) -> tuple[M | None, list[Problem]]:
    ctx = _Ctx(sdefs, path, file)
    blocks: list[Def] = []
    dropped = False  # a block (or part of one) could not be used at all
    # Reverse block order: the order in which Nix concatenates lists (R5.3.3); the parts of one block
    # (a block-level mkMerge) keep their order.
    for o in range(len(sdefs) - 1, -1, -1):
        d = sdefs[o]
        v = d.value
        if v.__class__ is dict and "_type" not in v and "imports" not in v:
            if v:
                blocks.append((o, "", v))
            continue
        flat: list[_Flat] = []
        before = len(ctx.problems)
        _discharge(ctx, o, "", v, None, None, flat, "")
        dropped = dropped or len(ctx.problems) > before
        block_path = d.source or path
        for prio, order, _o, _lr, x in flat:
            if not isinstance(x, dict):
                dropped = True
                ctx.add(
                    "settings-type",
                    "",
                    f"The settings block `{block_path}' must be an attribute set (a table / JSON object), "
                    f"not {_found(x)}. Definition values:\n- In `{ctx.loc(o, '')}': {_show(x)}",
                    ctx.file_of(o),
                    path=block_path,
                )
                continue
            if "imports" in x:
                ctx.problems.append(
                    Problem(
                        "settings-type",
                        f"{block_path}.imports",
                        f"The settings block `{block_path}' defines `imports': settings blocks do not allow "
                        "nested imports (uniqueDeferredSerializableModule doesn't allow nested imports).",
                        ctx.file_of(o),
                        "remove the `imports' key; settings are plain values",
                    )
                )
                x = {k: y for k, y in x.items() if k != "imports"}
            if prio != PLAIN_PRIORITY or order != PLAIN_ORDER:  # pushDownProperties
                x = {k: _rewrap(prio, order, y) for k, y in x.items()}
            blocks.append((o, "", x))
    merged = _merge_options(ctx, plan, blocks, "")
    walk_problems = bool(ctx.problems)
    try:
        result = _validate(plan, interface, merged, True)
    except ValidationError as e:
        _report_validation(ctx, plan, e, walk_problems, dropped)
        result = None
    if ctx.problems:
        return None, ctx.problems
    return result, []


# --------------------------------------------------------------------------------------------------
# pydantic errors (constraints, validators, missing options) -> problems

_CONSTRAINT_ERRORS: Final = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "multiple_of",
        "string_pattern_mismatch",
        "string_too_short",
        "string_too_long",
        "too_short",
        "too_long",
        "finite_number",
    }
)


class _Located:
    """Where a pydantic error location points to in the settings."""

    __slots__ = ("entry", "keys", "plan", "rel", "rels")

    def __init__(self) -> None:
        self.rel = ""  # relative option path
        self.rels = [""]  # it and every ancestor (to skip errors below reported problems)
        self.keys: list[str] = []  # attribute keys up to the first list index (to find definitions)
        self.entry: tuple[str, int] | None = None  # (relative path of the list, index) of that index
        self.plan: TypePlan | None = None  # the type there, if known


def _locate(plan: TypePlan, loc: tuple[Any, ...]) -> _Located:
    """Follow a pydantic error location through the plan."""
    at = _Located()
    rel = ""
    p: TypePlan | None = plan
    for item in loc:
        while isinstance(p, NullablePlan):
            p = p.inner
        if p is None or isinstance(p, UnionPlan):
            break  # pydantic adds union member tags to locations: stop at the union
        if isinstance(item, int):
            if isinstance(p, ListPlan):
                p = p.elem
            elif p is not ANYTHING_PLAN:
                break
            if at.entry is None:
                at.entry = (rel, item)
            rel = f"{rel}[{item}]"
        elif isinstance(item, str):
            if isinstance(p, ModelPlan):
                f = p.lookup.get(item)
                if f is not None:
                    item = f.key
                    p = f.plan
                else:
                    p = p.extra
            elif isinstance(p, AttrsPlan):
                p = p.elem
            elif p is not ANYTHING_PLAN:
                break
            rel = _child(rel, item)
            if at.entry is None:
                at.keys.append(item)
        else:
            break
        at.rels.append(rel)
    at.rel = rel
    at.plan = p
    return at


def _defs_at(ctx: _Ctx, keys: list[str]) -> list[Def]:
    """The definitions (unwrapped) that define the option at `keys`, for messages."""
    found: list[Def] = []
    for o, d in enumerate(ctx.defs):
        level: list[tuple[str, Any]] = [("", d.value)]
        for k in keys:
            nxt: list[tuple[str, Any]] = []
            for lr, v in level:
                flat: list[_Flat] = []
                _discharge(_Ctx(ctx.defs, ctx.path, ctx.file), o, lr, v, None, None, flat, "")
                for _p, _ord, _o, _lr, x in flat:
                    if isinstance(x, dict) and k in x:
                        nxt.append((_child(lr, k), x[k]))
            level = nxt
        for lr, v in level:
            flat = []
            _discharge(_Ctx(ctx.defs, ctx.path, ctx.file), o, lr, v, None, None, flat, "")
            found.extend((o, lr, x) for _p, _ord, _o, _lr, x in flat)
    return found


def _report_validation(
    ctx: _Ctx, plan: ModelPlan, e: ValidationError, walk_problems: bool, blocks_dropped: bool
) -> None:
    """Turn pydantic's errors into problems, leaving out consequences of problems already reported:
    values that failed to merge are missing from the data (and so "missing" for pydantic), a dropped
    block may have defined any option, and whole-model validators see incomplete data."""
    for err in e.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        at = _locate(plan, loc)
        rel = at.rel
        if any(r in ctx.failed for r in at.rels):
            continue  # already reported by the merge (the value was left out)
        if (walk_problems and not loc) or (blocks_dropped and err["type"] == "missing"):
            continue
        full = ctx.full(rel)
        etype = err["type"]
        if etype == "missing":
            ctx.add(
                "missing-setting",
                rel,
                f"The option `{full}' was accessed but has no value defined. Try setting the option.",
                ctx.file or next((d.file for d in ctx.defs if d.file), None),
                f"set `{rel.rsplit('.', 1)[-1] or full}' in the role-wide, machine or tag settings",
            )
            continue
        bad = err.get("input")
        defs = _defs_at(ctx, at.keys)
        if at.entry is not None:  # narrow down to the definition of the list entry
            list_rel, index = at.entry
            origin = _list_entry_origin(ctx, list_rel, index)
            if origin is not None:
                defs = [origin]
            elif len(defs) == 1 and isinstance(defs[0][2], list) and index < len(defs[0][2]):
                o, lr, value = defs[0]
                defs = [(o, f"{lr}[{index}]", value[index])]
        matching = [d for d in defs if _json_equal(d[2], bad)]
        if matching:  # e.g. only the winning (forced) definition, not the discarded ones
            defs = matching
        lines = ctx.show_defs(defs) if defs else f"- In `{ctx.path}': {_show(bad)}"
        if not matching:
            lines += f"\nInvalid value: {_show(bad)}"
        if etype in _CONSTRAINT_ERRORS and at.plan is not None:
            message = f"A definition for option `{full}' is not of type `{at.plan.description}'. "
            hint: str | None = err["msg"]
        else:
            message = f"A definition for option `{full}' is not valid: {err['msg']}. "
            hint = None
        message += f"Definition values:\n{lines}"
        ctx.add("settings-type", rel, message, ctx.first_file(defs) if defs else ctx.file, hint)


__all__ = [
    "SettingsDef",
    "SettingsMerger",
    "extend_settings",
    "merge_settings",
    "mk_after",
    "mk_before",
    "mk_default",
    "mk_force",
    "mk_if",
    "mk_merge",
    "mk_option_default",
    "mk_order",
    "mk_override",
    "settings_schema",
]
