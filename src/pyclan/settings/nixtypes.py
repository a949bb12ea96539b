"""Type plans: a pydantic settings interface seen through the eyes of the Nix module system.

A *plan* is computed once per interface class (and cached) from its field annotations. It tells the
merge engine (`pyclan.settings.merge`) how definitions of each option merge, and carries:

- ``description``: the type as Nix would print it (``signed integer``, ``list of string``,
  ``null or (list of string)``, ``one of "a", "b"``, ``submodule``, ``anything``, ...);
- ``shallow(v)``: Nix's ``type.check`` (is ``v`` the right *kind* of value; containers are not
  looked into), used to decide type errors before merging;
- ``clean(v)``: a deep check that ``v`` is a strictly well-typed JSON value with no priority
  wrappers and no unknown or non-canonical keys anywhere this plan looks. A clean value can be handed
  to pydantic unchanged, which is what the fast paths rely on. Required fields, constraints and
  validators are left to pydantic.

Type mapping (JSON values; pydantic *strict* semantics: ``"1"`` is not an int, ``true`` is not an
int, an int is fine where a float is expected):

=============================  ====================================
``str``                         ``types.str``
``int`` / ``float`` / ``bool``  ``types.int`` / ``types.float`` / ``types.bool``
``Literal[...]`` / ``Enum``     ``types.enum``
``X | None``                    ``types.nullOr X``
``X | Y``                       ``types.either X Y``
``list[X]``                     ``types.listOf X``
``dict[str, X]``                ``types.attrsOf X``
``BaseModel`` subclass          ``types.submodule`` (``extra="allow"``: freeform)
``Any`` / ``object`` / JSON     ``types.anything``
anything else                   opaque: definitions must be equal; pydantic validates (lax)
=============================  ====================================
"""

from __future__ import annotations

import collections.abc
import enum
import json
import types
import typing
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import annotated_types
import pydantic_core
from pydantic import AliasChoices, BaseModel, JsonValue, TypeAdapter
from pydantic.fields import FieldInfo
from typing_extensions import TypeAliasType

from pyclan.settings.overrides import WRAPPER_TYPES

# Plan kinds (ints: the merge engine dispatches on them through a tuple).
STR: Final = 0
INT: Final = 1
FLOAT: Final = 2
BOOL: Final = 3
NULL: Final = 4
ENUM: Final = 5
NULLABLE: Final = 6
UNION: Final = 7
LIST: Final = 8
ATTRS: Final = 9
MODEL: Final = 10
ANYTHING: Final = 11
OPAQUE: Final = 12
N_KINDS: Final = 13

# Nix `descriptionClass` values: decide where `optionDescriptionPhrase` puts parentheses.
NOUN: Final = "noun"
COMPOSITE: Final = "composite"
CONJUNCTION: Final = "conjunction"
CLAUSE: Final = "nonRestrictiveClause"

Check = Callable[[Any], bool]
_NoneType: Final = type(None)


def _is_wrapper_dict(v: dict[Any, Any]) -> bool:
    kind = v.get("_type")
    return isinstance(kind, str) and kind in WRAPPER_TYPES


class TypePlan:
    """How one option type behaves. `shallow` and `clean` are plain callables stored per plan."""

    __slots__ = ("clean", "desc_class", "description", "fills", "kind", "shallow")

    def __init__(self, kind: int, description: str, desc_class: str | None, shallow: Check, clean: Check):
        self.kind = kind
        self.description = description
        self.desc_class = desc_class
        self.shallow = shallow
        self.clean = clean
        self.fills: bool | None = None  # may a value of this type lack an option with an empty value (R5.3.9)?

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description!r}>"


class EnumPlan(TypePlan):
    __slots__ = ("allowed", "enum_cls")

    def __init__(self, values: Sequence[Any], enum_cls: type[enum.Enum] | None):
        self.allowed: frozenset[tuple[type | None, Any]] = frozenset((_json_kind(v), v) for v in values)
        self.enum_cls = enum_cls
        allowed = self.allowed

        def check(v: Any) -> bool:
            if enum_cls is not None and isinstance(v, enum_cls):
                return True
            kind = _json_kind(v)
            return kind is not None and kind is not list and kind is not dict and (kind, v) in allowed

        if not values:
            desc, cls = "impossible (empty enum)", NOUN
        elif len(values) == 1:
            desc, cls = f"value {show_nix(values[0])} (singular enum)", NOUN
        else:
            desc, cls = "one of " + ", ".join(show_nix(v) for v in values), CONJUNCTION
        super().__init__(ENUM, desc, cls, check, check)


class NullablePlan(TypePlan):
    __slots__ = ("inner",)

    def __init__(self, inner: TypePlan):
        self.inner = inner
        in_shallow, in_clean = inner.shallow, inner.clean

        def shallow(v: Any) -> bool:
            return v is None or in_shallow(v)

        def clean(v: Any) -> bool:
            return v is None or in_clean(v)

        desc = "null or " + _phrase(inner, (NOUN, CONJUNCTION))
        super().__init__(NULLABLE, desc, CONJUNCTION, shallow, clean)


class UnionPlan(TypePlan):
    __slots__ = ("alts",)

    def __init__(self, alts: Sequence[TypePlan]):
        self.alts = tuple(alts)
        shallows = tuple(a.shallow for a in self.alts)
        cleans = tuple(a.clean for a in self.alts)

        def shallow(v: Any) -> bool:
            return any(s(v) for s in shallows)

        def clean(v: Any) -> bool:
            return any(c(v) for c in cleans)

        desc = " or ".join(_phrase(a, (NOUN, CONJUNCTION)) for a in self.alts)
        super().__init__(UNION, desc, CONJUNCTION, shallow, clean)


class ListPlan(TypePlan):
    __slots__ = ("elem", "non_empty")

    def __init__(self, elem: TypePlan, non_empty: bool = False):
        self.elem = elem
        self.non_empty = non_empty  # Nix's nonEmptyListOf: no empty value

        def shallow(v: Any) -> bool:
            return isinstance(v, list)

        exact = _exact_classes(elem)

        def clean(v: Any) -> bool:
            if not isinstance(v, list):
                return False
            if exact is not None:
                for x in v:  # noqa: SIM110 - a loop is faster than all() on a generator
                    if x.__class__ not in exact and not elem.clean(x):
                        return False
                return True
            elem_clean = elem.clean  # looked up per call: `elem` may be a model plan still being built
            for x in v:  # noqa: SIM110
                if not elem_clean(x):
                    return False
            return True

        desc = ("non-empty list of " if non_empty else "list of ") + _phrase(elem, (NOUN, COMPOSITE))
        super().__init__(LIST, desc, COMPOSITE, shallow, clean)


class AttrsPlan(TypePlan):
    __slots__ = ("elem",)

    def __init__(self, elem: TypePlan):
        self.elem = elem

        def shallow(v: Any) -> bool:
            return isinstance(v, dict)

        def clean(v: Any) -> bool:
            if not isinstance(v, dict) or ("_type" in v and _is_wrapper_dict(v)):
                return False
            elem_clean = elem.clean
            for x in v.values():  # noqa: SIM110
                if not elem_clean(x):
                    return False
            return True

        super().__init__(ATTRS, "attribute set of " + _phrase(elem, (NOUN, COMPOSITE)), COMPOSITE, shallow, clean)


def _anything_clean(v: Any) -> bool:
    # Only attribute sets are merged (and so unwrapped) inside `anything`; lists are taken verbatim.
    if isinstance(v, dict):
        if "_type" in v and _is_wrapper_dict(v):
            return False
        for x in v.values():
            if isinstance(x, dict) and not _anything_clean(x):
                return False
    return True


def _true(v: Any) -> bool:
    return True


ANYTHING_PLAN: Final = TypePlan(ANYTHING, "anything", NOUN, _true, _anything_clean)


class OpaquePlan(TypePlan):
    """A type pyclan does not model (datetime, tuple, ...): definitions must be equal; pydantic checks it."""

    __slots__ = ("annotation",)

    def __init__(self, annotation: Any):
        self.annotation = annotation
        name = getattr(annotation, "__name__", None) or repr(annotation)

        def clean(v: Any) -> bool:
            return not (isinstance(v, dict) and _anything_clean(v) is False)

        super().__init__(OPAQUE, name, NOUN, _true, clean)


class FieldPlan:
    """One option of a submodule (a pydantic field)."""

    __slots__ = ("_default_json", "default_label", "has_default", "info", "key", "name", "plan")

    def __init__(self, name: str, key: str, plan: TypePlan, info: FieldInfo, owner: type[BaseModel]):
        self.name = name
        self.key = key  # canonical input key (the alias, if the model validates by alias)
        self.plan = plan
        self.info = info
        self.has_default = not info.is_required()
        self.default_label = f"the default of {owner.__name__}.{name}"
        self._default_json: Any = _UNSET

    def default_json(self) -> Any:
        """The interface default as a JSON value (needed only when it competes at priority 1500)."""
        if self._default_json is _UNSET:
            try:
                value = self.info.get_default(call_default_factory=True, validated_data={})
            except TypeError:  # pragma: no cover - pydantic versions without validated_data
                value = self.info.get_default(call_default_factory=True)
            self._default_json = pydantic_core.to_jsonable_python(value, by_alias=True)
        return self._default_json


_UNSET: Final = object()


class ModelPlan(TypePlan):
    """A pydantic model as a submodule: its options, their plans, freeform extras."""

    __slots__ = (
        "cleans", "empties", "exact", "extra", "fields", "fill_fields", "inject", "lookup", "model", "strict_config",
    )  # fmt: skip

    def __init__(self, model: type[BaseModel]):
        self.model = model
        self.fields: dict[str, FieldPlan] = {}  # canonical key -> field
        self.lookup: dict[str, FieldPlan] = {}  # every accepted key (alias, name) -> field
        self.extra: TypePlan | None = None  # freeform type for undeclared keys (extra="allow")
        self.strict_config = bool(model.model_config.get("strict"))
        # (key, field name, JSON template) of defaults to pass in explicitly; see `default_injections`.
        self.inject: tuple[tuple[str, str, Any], ...] | None = None
        # R5.3.9, filled in by `needs_fill`: (key, field name, factory) of the options pydantic requires
        # that have an empty value, and the fields whose values may need filling further down.
        self.empties: tuple[tuple[str, str, Callable[[], Any]], ...] = ()
        self.fill_fields: tuple[tuple[str, TypePlan], ...] = ()
        # Filled in after construction (models may refer to themselves), read by `clean`:
        cleans: dict[str, Check] = {}  # canonical key -> clean check of the option
        exact: dict[str, frozenset[type]] = {}  # canonical key -> classes that are clean without a call
        self.cleans = cleans
        self.exact = exact

        def shallow(v: Any) -> bool:
            return isinstance(v, dict)

        def clean(v: Any) -> bool:
            if v.__class__ is not dict and not isinstance(v, dict):
                return False
            for k, x in v.items():
                e = exact.get(k)
                if e is not None and x.__class__ in e:
                    continue
                c = cleans.get(k)
                if c is None:
                    extra = self.extra
                    if extra is None or k in self.lookup or (k == "_type" and _is_wrapper_dict(v)):
                        return False
                    if not extra.clean(x):
                        return False
                elif not c(x):
                    return False
            return True

        super().__init__(MODEL, "submodule", NOUN, shallow, clean)


_MODEL_PLANS: dict[type[BaseModel], ModelPlan] = {}


def model_plan(model: type[BaseModel]) -> ModelPlan:
    """The (cached) plan of a pydantic model class."""
    plan = _MODEL_PLANS.get(model)
    if plan is not None:
        return plan
    plan = ModelPlan(model)
    _MODEL_PLANS[model] = plan
    try:
        _fill_model_plan(plan, model)
    except BaseException:
        del _MODEL_PLANS[model]
        raise
    return plan


def _fill_model_plan(plan: ModelPlan, model: type[BaseModel]) -> None:
    cfg = model.model_config
    by_alias = cfg.get("validate_by_alias", True) is not False
    by_name = bool(cfg.get("validate_by_name") or cfg.get("populate_by_name"))
    for name, info in model.model_fields.items():
        accepted: list[str] = []
        if by_alias:
            va = info.validation_alias
            if isinstance(va, str):
                accepted.append(va)
            elif isinstance(va, AliasChoices):
                accepted.extend(c for c in va.choices if isinstance(c, str))
            elif isinstance(info.alias, str):
                accepted.append(info.alias)
        if by_name or not accepted:
            accepted.append(name)
        key = accepted[0]
        field = FieldPlan(name, key, plan_for(info.annotation, info.metadata), info, model)
        plan.fields[key] = field
        plan.cleans[key] = field.plan.clean
        exact = _exact_classes(field.plan)
        if exact is not None:
            plan.exact[key] = exact
        for k in accepted:
            plan.lookup.setdefault(k, field)
    if cfg.get("extra") == "allow":
        plan.extra = ANYTHING_PLAN
        try:
            hints = typing.get_type_hints(model)
        except Exception:  # unresolved forward references: fall back to anything
            hints = {}
        extra_t = hints.get("__pydantic_extra__")
        if get_origin(extra_t) is dict and len(get_args(extra_t)) == 2:
            plan.extra = plan_for(get_args(extra_t)[1])


def default_injections(plan: ModelPlan) -> tuple[tuple[str, str, Any], ...]:
    """Mutable defaults that are cheaper to pass in as JSON than to let pydantic copy (cached on the plan).

    pydantic deep-copies an unhashable default (``[]``, ``{}``, ``DynamicIp()``) for every instance,
    with `copy.deepcopy`: ~2 us for an empty list, ~10 us for a small model. Validating an equivalent
    JSON value costs a fraction of that. This is done only where it is provably the same: the
    template must validate back to a value equal to the default, and the option's type must not
    contain ``Any`` or opaque types (whose values pydantic would hand out uncopied). The caller
    removes injected names from ``model_fields_set`` again.
    """
    if plan.inject is not None:
        return plan.inject
    out: list[tuple[str, str, Any]] = []
    for key, field in plan.fields.items():
        info = field.info
        if info.default_factory is not None or info.is_required():
            continue
        default = info.default
        try:
            hash(default)
            continue  # hashable defaults are not copied by pydantic
        except TypeError:
            pass
        if not _copies_on_validation(field.plan, set()):
            continue
        try:
            tp: Any = info.annotation
            if info.metadata:
                tp = Annotated.__class_getitem__((tp, *info.metadata))  # type: ignore[attr-defined]
            adapter: TypeAdapter[Any] = TypeAdapter(tp)
            template = adapter.dump_python(default, mode="json", by_alias=True, exclude_unset=True)
            if not field.plan.clean(template) or adapter.validate_python(template) != default:
                continue
        except Exception:  # anything unusual: leave the default to pydantic
            continue
        out.append((key, field.name, template))
    plan.inject = tuple(out)
    return plan.inject


def _copies_on_validation(plan: TypePlan, seen: set[int]) -> bool:
    """Does validating a JSON value of this type build fresh containers all the way down?"""
    if plan.kind in (ANYTHING, OPAQUE):
        return False
    if isinstance(plan, (ListPlan, AttrsPlan)):
        return _copies_on_validation(plan.elem, seen)
    if isinstance(plan, NullablePlan):
        return _copies_on_validation(plan.inner, seen)
    if isinstance(plan, UnionPlan):
        return all(_copies_on_validation(a, seen) for a in plan.alts)
    if isinstance(plan, ModelPlan):
        if id(plan) in seen:
            return True
        seen.add(id(plan))
        return plan.extra is None and all(_copies_on_validation(f.plan, seen) for f in plan.fields.values())
    return True


# --------------------------------------------------------------------------------------------------
# R5.3.9 empty values: an option without default and without definition takes its type's empty value


def _null() -> None:
    return None


def empty_factory(plan: TypePlan, seen: frozenset[int] = frozenset()) -> Callable[[], Any] | None:
    """A function making the JSON empty value of a type, or None if the type has none (R5.3.9).

    ``listOf`` → ``[]``, ``attrsOf`` → ``{}``, ``nullOr`` → ``null``, a submodule → ``{}`` with its
    options' empty values filled in (their defaults are pydantic's). Scalars, enums, unions and
    ``anything`` have no empty value: such options are required.
    """
    kind = plan.kind
    if kind == LIST:
        return None if isinstance(plan, ListPlan) and plan.non_empty else list
    if kind == ATTRS:
        return dict
    if kind in (NULLABLE, NULL):
        return _null
    if kind == MODEL and id(plan) not in seen:
        assert isinstance(plan, ModelPlan)
        needs_fill(plan, seen)

        def make() -> Any:
            return fill_empty(plan, {})

        return make
    return None


def needs_fill(plan: TypePlan, seen: frozenset[int] = frozenset()) -> bool:
    """Can a (clean) value of this type lack an option that has an empty value? Cached on the plan.

    A recursive model met again answers True: that is always safe (filling finds nothing to do),
    and it makes every False that is computed (and cached) a real one.
    """
    if plan.fills is not None:
        return plan.fills
    if id(plan) in seen:
        return True
    inner = seen | {id(plan)}
    result = False
    if isinstance(plan, ModelPlan):
        empties: list[tuple[str, str, Callable[[], Any]]] = []
        deeper: list[tuple[str, TypePlan]] = []
        for key, field in plan.fields.items():
            if not field.has_default:
                make = empty_factory(field.plan, inner)
                if make is not None:
                    empties.append((key, field.name, make))
            if needs_fill(field.plan, inner):
                deeper.append((key, field.plan))
        plan.empties = tuple(empties)
        plan.fill_fields = tuple(deeper)
        result = bool(empties or deeper)
    elif isinstance(plan, (ListPlan, AttrsPlan)):
        result = needs_fill(plan.elem, inner)
    elif isinstance(plan, NullablePlan):
        result = needs_fill(plan.inner, inner)
    plan.fills = result
    return result


def fill_empty(plan: TypePlan, v: Any) -> Any:
    """`v` with every absent option that has an empty value set to it, at every submodule level.

    Copy on write: `v` itself (which may be a user's inventory value) is never changed; it is
    returned as it is when nothing was missing.
    """
    if not plan.fills:
        return v
    if isinstance(plan, ModelPlan):
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] | None = None
        for key, _name, make in plan.empties:
            if key not in v:
                if out is None:
                    out = dict(v)
                out[key] = make()
        for key, sub in plan.fill_fields:
            if key in v:
                x = v[key]
                y = fill_empty(sub, x)
                if y is not x:
                    if out is None:
                        out = dict(v)
                    out[key] = y
        return v if out is None else out
    if isinstance(plan, ListPlan):
        if not isinstance(v, list):
            return v
        filled = [fill_empty(plan.elem, x) for x in v]
        return v if all(a is b for a, b in zip(filled, v, strict=True)) else filled
    if isinstance(plan, AttrsPlan):
        if not isinstance(v, dict):
            return v
        mapped = {k: fill_empty(plan.elem, x) for k, x in v.items()}
        return v if all(mapped[k] is x for k, x in v.items()) else mapped
    if isinstance(plan, NullablePlan):
        return v if v is None else fill_empty(plan.inner, v)
    return v


def empty_json(plan: TypePlan) -> tuple[bool, Any]:
    """(complete, value): the value an option takes when nothing defines it, defaults included.

    Not complete when some required option below has neither default nor empty value (then the
    option is effectively required). For schemas: ``submodule {x: int = 1; y: listOf str}`` → ``{"x":1,"y":[]}``.
    """
    return _empty_json(plan, frozenset())


def _empty_json(plan: TypePlan, seen: frozenset[int]) -> tuple[bool, Any]:
    make = empty_factory(plan)
    if make is None or id(plan) in seen:
        return False, None
    if not isinstance(plan, ModelPlan):
        return True, make()
    out: dict[str, Any] = {}
    for key, field in plan.fields.items():
        if field.has_default:
            try:
                out[key] = field.default_json()
            except Exception:  # a default pydantic cannot serialise: leave it out of the schema value
                continue
            continue
        complete, value = _empty_json(field.plan, seen | {id(plan)})
        if not complete:
            return False, None
        out[key] = value
    return True, out


def annotate_schema(plan: ModelPlan, schema: dict[str, Any]) -> dict[str, Any]:
    """Make a pydantic JSON schema of `plan`'s model say what R5.3.9 means: options with an empty
    value are not `required` and have that value as their `default`. Changes `schema` in place."""
    defs = schema.get("$defs", {})
    _annotate(plan, schema, defs, set())
    return schema


def _deref(node: Any, defs: dict[str, Any]) -> Any:
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return defs.get(ref[len("#/$defs/") :], node)
    return node


def _annotate(plan: TypePlan, node: Any, defs: dict[str, Any], seen: set[int]) -> None:
    node = _deref(node, defs)
    if not isinstance(node, dict):
        return
    if isinstance(plan, ModelPlan):
        if id(node) in seen:
            return
        seen.add(id(node))
        props = node.get("properties", {})
        required = node.get("required")
        for key, field in plan.fields.items():
            prop = props.get(key)
            if not isinstance(prop, dict):
                continue
            if not field.has_default and isinstance(required, list) and key in required:
                complete, value = empty_json(field.plan)
                if complete:
                    required.remove(key)
                    prop["default"] = value
            _annotate(field.plan, prop, defs, seen)
        if isinstance(required, list) and not required:
            del node["required"]
    elif isinstance(plan, ListPlan):
        _annotate(plan.elem, node.get("items"), defs, seen)
    elif isinstance(plan, AttrsPlan):
        _annotate(plan.elem, node.get("additionalProperties"), defs, seen)
    elif isinstance(plan, NullablePlan):
        for alt in node.get("anyOf", ()):
            if alt != {"type": "null"}:
                _annotate(plan.inner, alt, defs, seen)


_LIST_ORIGINS: Final = (
    list,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
    collections.abc.MutableSet,
)
_DICT_ORIGINS: Final = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def plan_for(tp: Any, metadata: Sequence[Any] = ()) -> TypePlan:
    """The plan of a type annotation (with pydantic/annotated-types metadata for descriptions)."""
    return _plan(tp, tuple(metadata), frozenset())


def _plan(tp: Any, meta: tuple[Any, ...], aliases: frozenset[int]) -> TypePlan:
    origin = get_origin(tp)
    if origin is Annotated:
        args = get_args(tp)
        return _plan(args[0], (*meta, *args[1:]), aliases)
    if tp is JsonValue or tp is Any or tp is object:
        return ANYTHING_PLAN
    if isinstance(tp, TypeAliasType) or type(tp).__name__ == "TypeAliasType":
        if id(tp) in aliases:  # recursive alias: as good as anything
            return ANYTHING_PLAN
        return _plan(tp.__value__, meta, aliases | {id(tp)})
    if tp is None or tp is _NoneType:
        return TypePlan(NULL, "null", NOUN, _is_none, _is_none)
    if tp is bool:
        return TypePlan(BOOL, "boolean", NOUN, _is_bool, _is_bool)
    if tp is int:
        desc, cls = _int_description(_constraints(meta))
        return TypePlan(INT, desc, cls, _is_int, _is_int)
    if tp is float:
        desc, cls = _float_description(_constraints(meta))
        return TypePlan(FLOAT, desc, cls, _is_number, _is_number)
    if tp is str:
        desc, cls = _str_description(_constraints(meta))
        return TypePlan(STR, desc, cls, _is_str, _is_str)
    if hasattr(tp, "__supertype__"):  # typing.NewType
        return _plan(tp.__supertype__, meta, aliases)
    if origin is Union or origin is types.UnionType:
        args = get_args(tp)
        rest = [a for a in args if a is not None and a is not _NoneType]
        inner = _plan(rest[0], meta, aliases) if len(rest) == 1 else UnionPlan([_plan(a, meta, aliases) for a in rest])
        return NullablePlan(inner) if len(rest) < len(args) else inner
    if origin is Literal:
        values = [v.value if isinstance(v, enum.Enum) else v for v in get_args(tp)]
        return EnumPlan(values, None)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return EnumPlan([m.value for m in tp], tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return model_plan(tp)
    if origin in _LIST_ORIGINS or tp in _LIST_ORIGINS:
        args = get_args(tp)
        elem = _plan(args[0], (), aliases) if args else ANYTHING_PLAN
        min_len = _constraints(meta).get("min_length")
        return ListPlan(elem, non_empty=isinstance(min_len, int) and min_len >= 1)
    if origin in _DICT_ORIGINS or tp in _DICT_ORIGINS:
        args = get_args(tp)
        key_t, value_t = args if len(args) == 2 else (str, Any)
        if key_t is str or key_t is Any:
            return AttrsPlan(_plan(value_t, (), aliases))
    return OpaquePlan(tp)


def _exact_classes(plan: TypePlan) -> frozenset[type] | None:
    """Classes whose values are clean for `plan` without calling `clean` (a shortcut for scalars)."""
    kind = plan.kind
    if kind == STR:
        return frozenset({str}) if plan.description == "string" else None  # patterns: pydantic checks
    if kind == INT:
        return frozenset({int})
    if kind == FLOAT:
        return frozenset({int, float})
    if kind == BOOL:
        return frozenset({bool})
    if kind == NULL:
        return frozenset({_NoneType})
    if kind == NULLABLE:
        assert isinstance(plan, NullablePlan)
        inner = _exact_classes(plan.inner)
        return None if inner is None else inner | {_NoneType}
    return None


def _is_none(v: Any) -> bool:
    return v is None


def _is_bool(v: Any) -> bool:
    return v is True or v is False


def _is_int(v: Any) -> bool:
    return type(v) is int or (isinstance(v, int) and not isinstance(v, bool))


def _is_number(v: Any) -> bool:
    t = type(v)
    return t is float or t is int or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _json_kind(v: Any) -> type | None:
    """The JSON kind of a value: bool, int, float, str, NoneType, list, dict, or None if not JSON."""
    if v is None:
        return _NoneType
    if isinstance(v, bool):
        return bool
    if isinstance(v, int):
        return int
    if isinstance(v, float):
        return float
    if isinstance(v, str):
        return str
    if isinstance(v, list):
        return list
    if isinstance(v, dict):
        return dict
    return None


json_kind = _json_kind


def _constraints(meta: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def visit(m: Any) -> None:
        if isinstance(m, FieldInfo):
            for x in m.metadata:
                visit(x)
            return
        if isinstance(m, annotated_types.GroupedMetadata):
            for x in m:
                visit(x)
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(m, attr, None)
            if value is not None:
                out[attr] = value

    for m in meta:
        visit(m)
    return out


def _bounds(c: dict[str, Any]) -> tuple[Any, Any]:
    lo, hi = c.get("ge"), c.get("le")
    if lo is None and isinstance(c.get("gt"), int):
        lo = c["gt"] + 1
    if hi is None and isinstance(c.get("lt"), int):
        hi = c["lt"] - 1
    return lo, hi


def _int_description(c: dict[str, Any]) -> tuple[str, str | None]:
    lo, hi = _bounds(c)
    if lo is None and hi is None:
        return "signed integer", NOUN
    if hi is None:
        if lo == 0:
            return "unsigned integer, meaning >=0", CLAUSE
        if lo == 1:
            return "positive integer, meaning >0", CLAUSE
        return f"integer, meaning >={lo}", CLAUSE
    if lo is None:
        return f"integer, meaning <={hi}", CLAUSE
    if lo == 0 and hi in (255, 65535, 4294967295):
        bits = {255: 8, 65535: 16, 4294967295: 32}[hi]
        return f"{bits} bit unsigned integer; between 0 and {hi} (both inclusive)", None
    return f"integer between {lo} and {hi} (both inclusive)", None


def _float_description(c: dict[str, Any]) -> tuple[str, str | None]:
    lo_op, lo = (">=", c["ge"]) if "ge" in c else (">", c.get("gt"))
    hi_op, hi = ("<=", c["le"]) if "le" in c else ("<", c.get("lt"))
    if lo is None and hi is None:
        return "floating point number", NOUN
    if hi is None:
        return f"floating point number, meaning {lo_op}{lo}", CLAUSE
    if lo is None:
        return f"floating point number, meaning {hi_op}{hi}", CLAUSE
    return f"floating point number, meaning {lo_op}{lo} and {hi_op}{hi}", CLAUSE


def _str_description(c: dict[str, Any]) -> tuple[str, str | None]:
    pattern = c.get("pattern")
    if pattern is not None:
        return f"string matching the pattern {getattr(pattern, 'pattern', pattern)}", NOUN
    if c.get("min_length") == 1 and c.get("max_length") is None:
        return "non-empty string", NOUN
    return "string", NOUN


def _phrase(plan: TypePlan, unparenthesized: tuple[str, ...]) -> str:
    """Nix's `optionDescriptionPhrase`: parenthesise a nested description unless its class allows."""
    if plan.desc_class in unparenthesized:
        return plan.description
    return f"({plan.description})"


def show_nix(v: Any) -> str:
    """A scalar written the way Nix prints it in enum descriptions."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def describe(tp: Any) -> str:
    """The Nix-like description of a type annotation, e.g. ``null or (list of string)``."""
    return plan_for(tp).description


__all__ = [
    "ANYTHING",
    "ANYTHING_PLAN",
    "ATTRS",
    "BOOL",
    "ENUM",
    "FLOAT",
    "INT",
    "LIST",
    "MODEL",
    "NULL",
    "NULLABLE",
    "N_KINDS",
    "OPAQUE",
    "STR",
    "UNION",
    "AttrsPlan",
    "EnumPlan",
    "FieldPlan",
    "ListPlan",
    "ModelPlan",
    "NullablePlan",
    "OpaquePlan",
    "TypePlan",
    "UnionPlan",
    "annotate_schema",
    "default_injections",
    "describe",
    "empty_factory",
    "empty_json",
    "fill_empty",
    "json_kind",
    "model_plan",
    "needs_fill",
    "plan_for",
    "show_nix",
]
