"""Settings rules measured against Clan's evaluator (clan-semantics.md R5.3.3, R5.3.9; issue 8)."""

from __future__ import annotations

from typing import Annotated, Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, StringConstraints

from pyclan.settings import merge as settings_mod
from pyclan.settings.merge import SettingsDef, SettingsMerger, merge_settings, mk_force, settings_schema
from pyclan.settings.nixtypes import model_plan

INST = "instances.svc.roles.peer"
PATH = f"{INST}.machines.jon.settings"


def defs_of(role: Any, machine: Any, *tags: Any) -> list[SettingsDef]:
    out = [SettingsDef(role, f"{INST}.settings", "clan.toml"), SettingsDef(machine, PATH, "clan.toml")]
    out += [SettingsDef(t, f"{INST}.tags.t{i}.settings", "clan.toml") for i, t in enumerate(tags)]
    return out


def ok(interface: type[BaseModel], defs: list[SettingsDef]) -> Any:
    model, problems = merge_settings(interface, defs, PATH)
    assert problems == [], [p.render() for p in problems]
    assert model is not None
    return model


# --------------------------------------------------------------------------------------------------
# R5.3.9 empty values


class SubWithDefaults(BaseModel):
    x: int = 1
    y: list[str]


class EmptyValues(BaseModel):
    """The spec's example: `{l: listOf str; a: attrs; n: nullOr int; s: submodule {x: int = 1; y: listOf str}}`."""

    l: list[str]  # noqa: E741 - the spec's name
    a: dict[str, Any]
    n: int | None
    s: SubWithDefaults


SPEC_EMPTY = {"l": [], "a": {}, "n": None, "s": {"x": 1, "y": []}}


def test_R5_3_9_empty_values() -> None:
    model = ok(EmptyValues, [])
    assert model.model_dump(mode="json") == SPEC_EMPTY
    # the same through every path: role/machine blocks that define nothing, and a memoising merger
    assert ok(EmptyValues, defs_of({}, {})).model_dump(mode="json") == SPEC_EMPTY
    merged, problems = SettingsMerger().merge(EmptyValues, defs_of({}, {}), PATH)
    assert problems == [] and merged is not None and merged.model_dump(mode="json") == SPEC_EMPTY
    # what is not set is not marked as set
    assert model.model_fields_set == set()


def test_R5_3_9_empty_values_nested_submodule_levels() -> None:
    class Inner(BaseModel):
        keys: list[str]
        note: str | None

    class Outer(BaseModel):
        inner: Inner
        byName: dict[str, Inner] = {}
        many: list[Inner] = []

    value = {"byName": {"a": {"keys": ["k"]}}, "many": [{}], "inner": {"note": "n"}}
    model = ok(Outer, defs_of(value, {}))
    assert model.model_dump(mode="json") == {
        "inner": {"keys": [], "note": "n"},
        "byName": {"a": {"keys": ["k"], "note": None}},
        "many": [{"keys": [], "note": None}],
    }
    assert value == {"byName": {"a": {"keys": ["k"]}}, "many": [{}], "inner": {"note": "n"}}  # input untouched
    # the general merge (here forced by a wrapper) gives the same
    forced = ok(Outer, defs_of({**value, "inner": mk_force({"note": "n"})}, {}))
    assert forced == model


def test_R5_3_9_types_without_empty_value_are_required() -> None:
    class Required(BaseModel):
        name: str
        count: int
        flag: bool
        level: Annotated[str, StringConstraints(pattern="^[a-z]+$")]
        anything: Any
        some: Annotated[list[str], Field(min_length=1)]  # Nix's nonEmptyListOf: no empty value
        inner: SubWithDefaults  # has an empty value

    model, problems = merge_settings(Required, [], PATH)
    assert model is None
    assert sorted(p.path for p in problems) == sorted(
        f"{PATH}.{k}" for k in ("name", "count", "flag", "level", "anything", "some")
    )
    assert {p.kind for p in problems} == {"missing-setting"}
    assert all(p.message.endswith("was accessed but has no value defined. Try setting the option.") for p in problems)


def test_R5_3_9_required_option_inside_an_empty_submodule_is_reported_there() -> None:
    class Sub(BaseModel):
        ssid: str

    class S(BaseModel):
        net: Sub

    model, problems = merge_settings(S, [], PATH)
    assert model is None and [p.path for p in problems] == [f"{PATH}.net.ssid"]
    assert [p.kind for p in problems] == ["missing-setting"]


def test_R5_3_9_schema_says_the_same() -> None:
    schema = settings_schema(EmptyValues)
    assert "required" not in schema
    props = schema["properties"]
    assert {k: props[k]["default"] for k in ("l", "a", "n", "s")} == SPEC_EMPTY
    sub = schema["$defs"]["SubWithDefaults"]
    assert "required" not in sub and sub["properties"]["y"]["default"] == []
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({}, schema)  # nothing set is valid, as for the engine

    class Mixed(BaseModel):
        name: str
        net: SubWithDefaults
        strict: Annotated[list[int], Field(min_length=1)] = Field(default_factory=lambda: [1])

    schema = settings_schema(Mixed)
    assert schema["required"] == ["name"]
    assert schema["properties"]["net"]["default"] == {"x": 1, "y": []}


def test_R5_3_9_services_show_schema_matches_engine() -> None:
    """`services show` prints `settings_schema`: what it calls optional, the engine fills in."""

    class Iface(BaseModel):
        peers: list[str]
        options: dict[str, str]
        endpoint: str | None
        name: str

    schema = settings_schema(Iface)
    assert schema["required"] == ["name"]
    model = ok(Iface, defs_of({"name": "x"}, {}))
    assert {k: getattr(model, k) for k in ("peers", "options", "endpoint")} == {
        k: schema["properties"][k]["default"] for k in ("peers", "options", "endpoint")
    }


# --------------------------------------------------------------------------------------------------
# R5.3.3 list order per submodule level


class Deep(BaseModel):
    ports: list[int] = []


class Net(BaseModel):
    ports: list[int] = []
    deep: Deep = Deep()


class PortsOnly(BaseModel):
    ports: list[int] = []


class FiveLists(BaseModel):
    ports: list[int] = []
    net: Net = Net()
    byKey: dict[str, list[int]] = {}
    subByKey: dict[str, PortsOnly] = {}


def _five(x: int) -> dict[str, Any]:
    return {
        "ports": [x],
        "net": {"ports": [x], "deep": {"ports": [x]}},
        "byKey": {"k": [x]},
        "subByKey": {"k": {"ports": [x]}},
    }


CLAN_FIVE = {
    "ports": [3, 2, 1],
    "net": {"ports": [1, 2, 3], "deep": {"ports": [3, 2, 1]}},
    "byKey": {"k": [3, 2, 1]},
    "subByKey": {"k": {"ports": [1, 2, 3]}},
}


def test_R5_3_3_list_order_per_submodule_level() -> None:
    defs = defs_of(_five(1), _five(2), _five(3))  # role [1], machine [2], tag [3]
    assert ok(FiveLists, defs).model_dump() == CLAN_FIVE
    plan = model_plan(FiveLists)
    fast = settings_mod._fast_merge(plan, FiveLists, [d.value for d in defs], defs)
    slow, problems = settings_mod._slow_merge(plan, FiveLists, defs, PATH, None)
    assert problems == [] and fast is not None and slow is not None
    assert fast.model_dump() == slow.model_dump() == CLAN_FIVE


def test_R5_3_3_list_order_per_submodule_level_two_tags() -> None:
    # tags in reverse name order at even depth, in name order at odd depth
    defs = defs_of({"net": {"ports": [1]}}, {"net": {"ports": [2]}}, {"net": {"ports": [3]}}, {"net": {"ports": [4]}})
    assert ok(FiveLists, defs).net.ports == [1, 2, 3, 4]
    defs = defs_of({"ports": [1]}, {"ports": [2]}, {"ports": [3]}, {"ports": [4]})
    assert ok(FiveLists, defs).ports == [4, 3, 2, 1]


_ports = st.lists(st.integers(0, 3), max_size=2)
_block = st.fixed_dictionaries(
    {},
    optional={
        "ports": _ports,
        "net": st.fixed_dictionaries({}, optional={"ports": _ports, "deep": st.fixed_dictionaries({"ports": _ports})}),
        "byKey": st.dictionaries(st.sampled_from(["k", "j"]), _ports, max_size=2),
        "subByKey": st.dictionaries(st.sampled_from(["k", "j"]), st.fixed_dictionaries({"ports": _ports}), max_size=2),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_block, min_size=1, max_size=4))
def test_R5_3_3_fast_and_general_merge_agree_on_nested_list_order(blocks: list[dict[str, Any]]) -> None:
    defs = [SettingsDef(b, f"src{i}", "clan.toml") for i, b in enumerate(blocks)]
    plan = model_plan(FiveLists)
    slow, problems = settings_mod._slow_merge(plan, FiveLists, defs, PATH, None)
    assert problems == [] and slow is not None
    fast = settings_mod._fast_merge(plan, FiveLists, [b for b in blocks if b], defs)
    if fast is not None:
        assert fast == slow


# --------------------------------------------------------------------------------------------------
# Bad input stays cheap (issue 10 item 10): every bad list entry is reported, each at its definition


def test_every_bad_list_entry_is_reported_with_its_own_definition() -> None:
    endpoint = Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+:[0-9]+$")]

    class Iface(BaseModel):
        endpoints: list[endpoint] = []

    blocks: list[list[str]] = [[], [], []]
    expected: dict[str, tuple[str, str]] = {}  # merged path -> (definition location, value)
    sources = [f"{INST}.settings", PATH, f"{INST}.tags.t0.settings"]
    for b in range(3):
        for j in range(400):
            blocks[b].append(f"h{b}-{j}.lan:1" if j % 2 == 0 else f"BAD {b} {j}")
    # merged order (R5.3.3): tag, machine, role
    index = 0
    for b in (2, 1, 0):
        for j, value in enumerate(blocks[b]):
            if value.startswith("BAD"):
                expected[f"{PATH}.endpoints[{index}]"] = (f"{sources[b]}.endpoints[{j}]", value)
            index += 1
    defs = defs_of({"endpoints": blocks[0]}, {"endpoints": blocks[1]}, {"endpoints": blocks[2]})
    model, problems = merge_settings(Iface, defs, PATH)
    assert model is None
    assert len(problems) == len(expected) == 600
    for p in problems:
        location, value = expected[p.path]
        assert p.kind == "settings-type"
        assert f"- In `clan.toml, via option inventory.{location}': {json_dumps(value)}" in p.message, p.message


def json_dumps(v: Any) -> str:
    import json

    return json.dumps(v)


def test_R5_3_9_bundled_services_schema_and_engine_agree() -> None:
    """For every bundled role: the schema's `required` are exactly what the engine reports missing, and
    what the engine makes of an empty definition is valid for the schema (`services show` tells the truth)."""
    from pyclan.services.registry import ServiceRegistry

    registry = ServiceRegistry.for_clan(None)
    roles = 0
    for entry in registry.entries():
        service = registry.resolve(entry.name, entry.input, "x")
        for name, role in service.roles.items():
            roles += 1
            schema = settings_schema(role.interface)
            jsonschema.Draft202012Validator.check_schema(schema)
            model, problems = merge_settings(role.interface, [], PATH)
            missing = sorted(p.path.removeprefix(f"{PATH}.") for p in problems if p.kind == "missing-setting")
            assert missing == sorted(schema.get("required", [])), (entry.name, name)
            if model is not None:
                dumped = model.model_dump(mode="json", by_alias=True)
                assert list(jsonschema.Draft202012Validator(schema).iter_errors(dumped)) == [], (entry.name, name)
    assert roles >= 10


def test_R5_3_9_services_show_prints_the_empty_values(tmp_path: Any) -> None:
    from pyclan import api

    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "svc.py").write_text(
        "from pydantic import BaseModel\n"
        "from pyclan.services import Service\n"
        "service = Service('svc')\n"
        "class S(BaseModel):\n"
        "    peers: list[str]\n"
        "    endpoint: str | None\n"
        "    name: str\n"
        "service.role('peer', interface=S)(lambda ctx: None)\n"
    )
    (tmp_path / "clan.toml").write_text('[meta]\nname = "t"\n')
    info = api.get_service_module("svc", "self", str(tmp_path))
    schema = info.roles["peer"].schema
    assert schema["required"] == ["name"]
    assert schema["properties"]["peers"]["default"] == [] and schema["properties"]["endpoint"]["default"] is None
