"""Settings merge engine (clan-semantics.md §5, R5.5, R7.1)."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from pyclan.errors import ClanError, Problem
from pyclan.settings import merge as settings_mod
from pyclan.settings.merge import (
    SettingsDef,
    SettingsMerger,
    extend_settings,
    merge_settings,
    mk_after,
    mk_before,
    mk_default,
    mk_force,
    mk_if,
    mk_merge,
    mk_option_default,
    mk_override,
    settings_schema,
)
from pyclan.settings.nixtypes import describe, model_plan

# --------------------------------------------------------------------------------------------------
# Interfaces


class DynamicIp(BaseModel):
    enable: bool = False
    subnet: str = "10.0.0.0/8"


class PeerSettings(BaseModel):
    ipRanges: list[str] = []
    timeout: str
    dynamicIp: DynamicIp = DynamicIp()


class Network(BaseModel):
    enable: bool = True
    autoConnect: bool = True
    keyMgmt: str = "wpa-psk"


class WifiSettings(BaseModel):
    networks: dict[str, Network] = {}


class Free(BaseModel):
    model_config = ConfigDict(extra="allow")
    known: int = 0


class Mode(enum.Enum):
    FAST = "fast"
    SAFE = "safe"


class Typed(BaseModel):
    count: int = 0
    ratio: float = 1.0
    flag: bool = False
    name: str = ""
    maybe: str | None = None
    level: Literal["a", "b"] = "a"
    mode: Mode = Mode.SAFE
    tags: list[str] = []
    labels: dict[str, str] = {}
    extra: Any = None
    data: dict[str, Any] = {}
    port: int = Field(default=1, ge=1)
    host: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")] = "x"
    sub: DynamicIp = DynamicIp()


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    ip_ranges: list[str] = Field(default=[], alias="ipRanges")


INST = "instances.my-vpn.roles.peer"
PATH = f"{INST}.machines.laptop.settings"
ROLE_SRC = f"{INST}.settings"
MACHINE_SRC = f"{INST}.machines.laptop.settings"


def role(v: Any, file: str | None = "clan.toml") -> SettingsDef:
    return SettingsDef(v, ROLE_SRC, file)


def machine(v: Any, file: str | None = "clan.toml") -> SettingsDef:
    return SettingsDef(v, MACHINE_SRC, file)


def tag(name: str, v: Any, file: str | None = "clan.toml") -> SettingsDef:
    return SettingsDef(v, f"{INST}.tags.{name}.settings", file)


def ok(interface: type[BaseModel], *defs: SettingsDef) -> Any:
    model, problems = merge_settings(interface, list(defs), PATH)
    assert problems == [], [p.render() for p in problems]
    assert model is not None
    return model


def fail(interface: type[BaseModel], *defs: SettingsDef) -> list[Problem]:
    model, problems = merge_settings(interface, list(defs), PATH)
    assert model is None
    assert problems
    return problems


def only(problems: list[Problem], kind: str) -> Problem:
    assert [p.kind for p in problems] == [kind], [p.render() for p in problems]
    return problems[0]


# --------------------------------------------------------------------------------------------------
# R5.3.1 scalars


def test_R5_3_1_scalar_conflict_names_every_definition() -> None:
    p = only(
        fail(
            PeerSettings,
            role({"timeout": "a"}),
            machine({"timeout": "b"}, "inventory.json"),
            tag("t1", {"timeout": "c"}),
        ),
        "conflict",
    )
    assert p.path == f"{PATH}.timeout"
    assert p.message.startswith(f"The option `{PATH}.timeout' has conflicting definition values:")
    assert f'- In `clan.toml, via option inventory.{ROLE_SRC}.timeout\': "a"' in p.message
    assert f'- In `inventory.json, via option inventory.{MACHINE_SRC}.timeout\': "b"' in p.message
    assert f'- In `clan.toml, via option inventory.{INST}.tags.t1.settings.timeout\': "c"' in p.message
    assert p.hint is not None and "mkForce" in p.hint and "mkDefault" in p.hint
    assert '{"_type": "override", "priority": 50, "content": ...}' in p.hint
    assert p.file == "clan.toml"


def test_R5_3_1_equal_scalars_do_not_conflict() -> None:
    m = ok(PeerSettings, role({"timeout": "a"}), machine({"timeout": "a"}), tag("t", {"timeout": "a"}))
    assert m.timeout == "a"


def test_R5_3_1_conflict_without_file_says_unknown_file() -> None:
    p = only(fail(PeerSettings, role({"timeout": "a"}, None), machine({"timeout": "b"}, None)), "conflict")
    assert "<unknown-file>, via option" in p.message


def test_R5_3_1_conflicts_in_nested_submodule_and_enum() -> None:
    problems = fail(
        Typed,
        role({"sub": {"enable": True}, "mode": "fast", "count": 1}),
        machine({"sub": {"enable": False}, "mode": "safe", "count": 1}),
    )
    assert sorted(p.path for p in problems) == [f"{PATH}.mode", f"{PATH}.sub.enable"]
    assert {p.kind for p in problems} == {"conflict"}


# --------------------------------------------------------------------------------------------------
# R5.3.2 priorities


def test_R5_3_2_mkforce_beats_plain() -> None:
    m = ok(PeerSettings, role({"timeout": "role"}), machine({"timeout": mk_force("machine")}))
    assert m.timeout == "machine"
    m = ok(PeerSettings, role({"timeout": mk_force("role")}), machine({"timeout": "machine"}))
    assert m.timeout == "role"


def test_R5_3_2_plain_beats_mkdefault_beats_interface_default() -> None:
    m = ok(PeerSettings, role({"timeout": mk_default("d")}), machine({"timeout": "plain"}))
    assert m.timeout == "plain"
    m = ok(PeerSettings, role({"timeout": "x", "dynamicIp": {"subnet": mk_default("192.168.0.0/16")}}))
    assert m.dynamicIp.subnet == "192.168.0.0/16"


def test_R5_3_2_priority_discards_weaker_lists() -> None:
    m = ok(
        PeerSettings,
        role({"timeout": "x", "ipRanges": ["r"]}),
        machine({"ipRanges": mk_force(["m"])}),
        tag("t", {"ipRanges": mk_default(["t"])}),
    )
    assert m.ipRanges == ["m"]


def test_R5_3_2_two_mkforce_conflict() -> None:
    p = only(
        fail(
            PeerSettings,
            role({"timeout": "x"}),
            machine({"timeout": mk_force("a")}),
            tag("t", {"timeout": mk_force("b")}),
        ),
        "conflict",
    )
    assert ROLE_SRC not in p.message  # the discarded plain definition is not part of the conflict
    assert MACHINE_SRC in p.message and ".tags.t.settings.timeout" in p.message


def test_R5_3_2_whole_submodule_forced_discards_other_definitions() -> None:
    m = ok(
        PeerSettings,
        role({"timeout": "x", "dynamicIp": {"subnet": "1.0.0.0/8"}}),
        machine({"dynamicIp": mk_force({"enable": True})}),
    )
    assert m.dynamicIp == DynamicIp(enable=True)  # subnet back to its default


def test_R5_3_2_block_level_wrapper_is_pushed_down() -> None:
    m = ok(
        PeerSettings,
        role({"timeout": "x", "dynamicIp": {"enable": False}}),
        machine(mk_force({"timeout": "y", "dynamicIp": {"enable": True}})),
    )
    assert m.timeout == "y" and m.dynamicIp.enable is True


def test_R5_3_2_mkif_and_mkmerge() -> None:
    m = ok(PeerSettings, role({"timeout": "x", "ipRanges": mk_merge([["a"], mk_if(False, ["b"]), mk_if(True, ["c"])])}))
    assert m.ipRanges == ["a", "c"]
    m = ok(PeerSettings, role({"timeout": "x"}), machine({"timeout": mk_if(False, "y")}))
    assert m.timeout == "x"
    m = ok(PeerSettings, role({"timeout": "x", "ipRanges": ["a", mk_if(False, "b")]}))
    assert m.ipRanges == ["a"]


def test_R5_3_2_malformed_wrapper_is_reported() -> None:
    p = only(fail(PeerSettings, role({"timeout": {"_type": "override", "content": "x"}})), "settings-type")
    assert p.path == f"{PATH}.timeout"
    assert "priority" in p.message


# --------------------------------------------------------------------------------------------------
# R5.3.3 lists


def test_R5_3_3_list_order_tags_reversed_machine_role() -> None:
    m = ok(
        PeerSettings,
        role({"timeout": "x", "ipRanges": ["r"]}),
        machine({"ipRanges": ["m"]}),
        tag("t1", {"ipRanges": ["tag1"]}),
        tag("t2", {"ipRanges": ["tag2"]}),
    )
    assert m.ipRanges == ["tag2", "tag1", "m", "r"]


def test_R5_3_3_mkbefore_mkafter_reorder() -> None:
    m = ok(
        PeerSettings,
        role({"timeout": "x", "ipRanges": mk_before(["r"])}),
        machine({"ipRanges": ["m"]}),
        tag("t1", {"ipRanges": mk_after(["tag1"])}),
        tag("t2", {"ipRanges": ["tag2"]}),
    )
    assert m.ipRanges == ["r", "tag2", "m", "tag1"]
    m = ok(
        PeerSettings,
        role({"timeout": "x", "ipRanges": mk_force(mk_before(["r"]))}),
        machine({"ipRanges": mk_force(["m"])}),
    )
    assert m.ipRanges == ["r", "m"]


def test_R5_3_3_list_of_submodules_fill_defaults_and_concatenate() -> None:
    class S(BaseModel):
        peers: list[DynamicIp] = []

    m = ok(S, role({"peers": [{"enable": True}]}), machine({"peers": [{}]}))
    assert m.peers == [DynamicIp(), DynamicIp(enable=True)]


# --------------------------------------------------------------------------------------------------
# R5.3.4 attrsOf / submodule


def test_R5_3_4_attrsof_submodule_defaults_per_key() -> None:
    m = ok(WifiSettings, role({"networks": {"home": {}}}))
    assert m.networks["home"].model_dump() == {"enable": True, "autoConnect": True, "keyMgmt": "wpa-psk"}


def test_R5_3_4_attrsof_merges_key_by_key_across_definitions() -> None:
    m = ok(
        WifiSettings,
        role({"networks": {"home": {"autoConnect": False}}}),
        machine({"networks": {"home": {"keyMgmt": "sae"}, "work": {}}}),
    )
    assert m.networks["home"] == Network(autoConnect=False, keyMgmt="sae")
    assert m.networks["work"] == Network()
    p = only(
        fail(
            WifiSettings,
            role({"networks": {"home": {"keyMgmt": "a"}}}),
            machine({"networks": {"home": {"keyMgmt": "b"}}}),
        ),
        "conflict",
    )
    assert p.path == f"{PATH}.networks.home.keyMgmt"
    assert f"{MACHINE_SRC}.networks.home.keyMgmt" in p.message


def test_R5_3_4_submodule_merges_across_definitions() -> None:
    m = ok(
        PeerSettings,
        role({"timeout": "x", "dynamicIp": {"enable": True}}),
        machine({"dynamicIp": {"subnet": "10.1.0.0/16"}}),
    )
    assert m.dynamicIp == DynamicIp(enable=True, subnet="10.1.0.0/16")


# --------------------------------------------------------------------------------------------------
# R5.3.5 anything


def test_R5_3_5_anything_nested_lists_must_be_equal() -> None:
    p = only(fail(Typed, role({"extra": {"a": {"l": [1]}}}), machine({"extra": {"a": {"l": [2]}}})), "conflict")
    assert p.path == f"{PATH}.extra.a.l"
    m = ok(Typed, role({"extra": {"a": {"l": [1]}}}), machine({"extra": {"a": {"l": [1]}}}))
    assert m.extra == {"a": {"l": [1]}}


def test_R5_3_5_anything_attrsets_merge_recursively() -> None:
    m = ok(
        Typed,
        role({"data": {"a": {"x": 1}, "s": "v"}}),
        machine({"data": {"a": {"y": mk_force(2)}}}),
        tag("t", {"data": {"a": {"y": 3}}}),
    )
    assert m.data == {"a": {"x": 1, "y": 2}, "s": "v"}


def test_R5_3_5_anything_different_types_conflict() -> None:
    p = only(fail(Typed, role({"extra": [1]}), machine({"extra": {"a": 1}})), "conflict")
    assert "types" in p.message
    only(fail(Typed, role({"data": {"k": True}}), machine({"data": {"k": 1}})), "conflict")


# --------------------------------------------------------------------------------------------------
# R5.3.6 defaults


def test_R5_3_6_defined_list_replaces_default() -> None:
    class S(BaseModel):
        ranges: list[str] = ["default"]
        attrs: dict[str, int] = {"d": 1}

    m = ok(S, role({"ranges": ["mine"], "attrs": {"x": 2}}))
    assert m.ranges == ["mine"] and m.attrs == {"x": 2}
    m = ok(S, role({}))
    assert m.ranges == ["default"] and m.attrs == {"d": 1}
    m = ok(S, role({"ranges": []}))
    assert m.ranges == []


def test_R5_3_6_defaults_compete_at_priority_1500() -> None:
    class S(BaseModel):
        ranges: list[str] = ["default"]
        name: str = "d"

    m = ok(S, role({"ranges": mk_option_default(["x"]), "name": mk_override(2000, "weak")}))
    assert m.ranges == ["default", "x"] and m.name == "d"
    only(fail(S, role({"name": mk_option_default("other")})), "conflict")


# --------------------------------------------------------------------------------------------------
# R5.3.7 unknown keys


def test_R5_3_7_unknown_setting_did_you_mean() -> None:
    p = only(fail(PeerSettings, role({"timeout": "x"}), machine({"ipRange": ["a"]})), "unknown-setting")
    assert p.path == f"{PATH}.ipRange"
    assert p.message.startswith(f"The option `{PATH}.ipRange' does not exist. Definition values:")
    assert f"{MACHINE_SRC}.ipRange" in p.message
    assert p.hint == "did you mean 'ipRanges'?"


def test_R5_3_7_unknown_nested_key_and_no_close_match() -> None:
    p = only(fail(PeerSettings, role({"timeout": "x", "dynamicIp": {"zzz": 1}})), "unknown-setting")
    assert p.path == f"{PATH}.dynamicIp.zzz"
    assert p.hint is not None and "enable" in p.hint and "subnet" in p.hint


def test_R5_3_7_aliases_are_the_option_names() -> None:
    m = ok(Aliased, role({"ipRanges": ["a"]}), machine({"ip_ranges": ["b"]}))
    assert m.ip_ranges == ["b", "a"]
    p = only(fail(Aliased, role({"ipRange": ["a"]})), "unknown-setting")
    assert p.hint == "did you mean 'ipRanges'?"


def test_R5_3_7_freeform_model_accepts_extra_keys() -> None:
    m = ok(Free, role({"known": 1, "other": {"a": 1}}), machine({"other": {"b": 2}}))
    assert m.known == 1 and m.model_extra == {"other": {"a": 1, "b": 2}}


def test_R5_3_11_reserved_module_keys_are_ordinary_settings_except_imports() -> None:
    class S(BaseModel):
        config: str = ""
        options: int = 0

    m = ok(S, role({"config": "x", "options": 2}))
    assert m.config == "x" and m.options == 2
    p = only(fail(S, role({"imports": []})), "settings-type")
    assert "imports" in p.message and p.path == f"{ROLE_SRC}.imports"


# --------------------------------------------------------------------------------------------------
# R5.3.8 types


@pytest.mark.parametrize(
    ("field", "value", "description"),
    [
        ("count", "1", "signed integer"),
        ("count", True, "signed integer"),
        ("count", 1.5, "signed integer"),
        ("flag", 1, "boolean"),
        ("name", 1, "string"),
        ("ratio", "1.0", "floating point number"),
        ("tags", "a", "list of string"),
        ("tags", [1], "string"),
        ("labels", {"a": 1}, "string"),
        ("labels", [], "attribute set of string"),
        ("maybe", 1, "null or string"),
        ("level", "c", 'one of "a", "b"'),
        ("mode", "slow", 'one of "fast", "safe"'),
        ("sub", "x", "submodule"),
        ("data", [], "attribute set of anything"),
        ("port", 0, "positive integer, meaning >0"),
        ("host", "ABC", "string matching the pattern ^[a-z]+$"),
    ],
)
def test_R5_3_8_type_mismatch_description(field: str, value: Any, description: str) -> None:
    p = only(fail(Typed, machine({field: value})), "settings-type")
    assert f"is not of type `{description}'" in p.message
    assert p.path.startswith(f"{PATH}.{field}")
    assert f"via option inventory.{MACHINE_SRC}.{field}" in p.message
    shown = value[0] if p.path.endswith("[0]") else value["a"] if p.path.endswith(".a") else value
    assert json.dumps(shown) in p.message


def test_R5_3_8_message_says_what_was_found() -> None:
    p = only(fail(Typed, machine({"count": "1"})), "settings-type")
    assert p.message == (
        f"A definition for option `{PATH}.count' is not of type `signed integer'. Definition values:\n"
        f'- In `clan.toml, via option inventory.{MACHINE_SRC}.count\': "1" (a string)'
    )
    assert p.file == "clan.toml"


def test_R5_3_8_list_element_path() -> None:
    p = only(
        fail(PeerSettings, role({"timeout": "x", "ipRanges": ["a"]}), machine({"ipRanges": ["b", 2]})), "settings-type"
    )
    assert p.path == f"{PATH}.ipRanges[1]"
    assert f"{MACHINE_SRC}.ipRanges[1]" in p.message


def test_R5_3_8_strict_values_and_int_for_float() -> None:
    m = ok(Typed, role({"ratio": 2, "mode": "fast", "level": "b", "maybe": None}))
    assert m.ratio == 2.0 and isinstance(m.ratio, float)
    assert m.mode is Mode.FAST and m.level == "b" and m.maybe is None


def test_R5_3_8_validators_are_settings_type_problems() -> None:
    class S(BaseModel):
        name: str = "x"

        @field_validator("name")
        @classmethod
        def no_spaces(cls, v: str) -> str:
            if " " in v:
                raise ValueError("no spaces allowed")
            return v

    p = only(fail(S, machine({"name": "a b"})), "settings-type")
    assert p.path == f"{PATH}.name" and "no spaces allowed" in p.message
    assert f"via option inventory.{MACHINE_SRC}.name" in p.message


def test_R5_3_8_descriptions_follow_nix_phrasing() -> None:
    assert describe(list[dict[str, int]]) == "list of attribute set of signed integer"
    assert describe(list[str] | None) == "null or (list of string)"
    assert describe(list[Literal["a", "b"]]) == 'list of (one of "a", "b")'
    assert describe(int | str) == "signed integer or string"
    assert describe(Annotated[int, Field(ge=0, le=65535)]) == (
        "16 bit unsigned integer; between 0 and 65535 (both inclusive)"
    )
    assert describe(Annotated[int, Field(ge=0)]) == "unsigned integer, meaning >=0"
    assert describe(DynamicIp) == "submodule"
    assert describe(Any) == "anything"


def test_R5_3_8_block_not_a_dict() -> None:
    p = only(fail(PeerSettings, role({"timeout": "x"}), machine(["not", "a", "dict"])), "settings-type")
    assert p.path == MACHINE_SRC
    assert "attribute set" in p.message


def test_R5_3_8_nullor_defined_both_null_and_not_null() -> None:
    p = only(fail(Typed, role({"maybe": None}), machine({"maybe": "x"})), "conflict")
    assert "both null and not null" in p.message


# --------------------------------------------------------------------------------------------------
# R5.3.9 missing


def test_R5_3_9_missing_required() -> None:
    p = only(fail(PeerSettings, role({})), "missing-setting")
    assert p.path == f"{PATH}.timeout"
    assert p.message == (f"The option `{PATH}.timeout' was accessed but has no value defined. Try setting the option.")
    p = only(fail(PeerSettings), "missing-setting")
    assert p.path == f"{PATH}.timeout"


def test_R5_3_9_missing_nested_required() -> None:
    class Net(BaseModel):
        ssid: str

    class S(BaseModel):
        networks: dict[str, Net] = {}

    p = only(fail(S, role({"networks": {"home": {}}})), "missing-setting")
    assert p.path == f"{PATH}.networks.home.ssid"


def test_all_problems_of_one_merge_are_reported() -> None:
    problems = fail(
        Typed,
        role({"count": "1", "bogus": 1, "name": "a", "port": 0}),
        machine({"name": "b", "tags": [1, "x", 2]}),
    )
    kinds = sorted((p.kind, p.path.removeprefix(PATH + ".")) for p in problems)
    assert kinds == [
        ("conflict", "name"),
        ("settings-type", "count"),
        ("settings-type", "port"),
        ("settings-type", "tags[0]"),
        ("settings-type", "tags[2]"),
        ("unknown-setting", "bogus"),
    ]


# --------------------------------------------------------------------------------------------------
# R5.3.10 wrappers


def test_R5_3_10_priority_wrappers_json() -> None:
    assert mk_force(1) == {"_type": "override", "priority": 50, "content": 1}
    assert mk_default("x") == {"_type": "override", "priority": 1000, "content": "x"}
    assert mk_option_default([]) == {"_type": "override", "priority": 1500, "content": []}
    assert mk_override(10, True) == {"_type": "override", "priority": 10, "content": True}
    assert mk_before(["a"]) == {"_type": "order", "priority": 500, "content": ["a"]}
    assert mk_after(["a"]) == {"_type": "order", "priority": 1500, "content": ["a"]}
    # they survive a JSON round trip (inventory.json)
    block = json.loads(json.dumps({"timeout": mk_force("forced")}))
    assert ok(PeerSettings, role({"timeout": "plain"}), machine(block)).timeout == "forced"


# --------------------------------------------------------------------------------------------------
# R5.5 extendSettings, R7.1


def test_R5_5_extend_settings_option_default() -> None:
    class UserSettings(BaseModel):
        user: str
        groups: list[str] = []

    defs = [role({"groups": ["wheel"]})]
    assert extend_settings(UserSettings, defs, {"user": mk_option_default("alice")}, PATH).user == "alice"
    defs = [role({"groups": ["wheel"]}), machine({"user": "bob"})]
    assert extend_settings(UserSettings, defs, {"user": mk_option_default("alice")}, PATH).user == "bob"


def test_R5_5_extend_settings_override_10() -> None:
    defs = [role({"timeout": "plain"}), machine({"timeout": mk_force("forced")})]
    assert extend_settings(PeerSettings, defs, {"timeout": mk_override(10, "x")}, PATH).timeout == "x"
    # the result is local: the original merge is unchanged
    assert ok(PeerSettings, *defs).timeout == "forced"
    # applied repeatedly
    once = extend_settings(PeerSettings, defs, {"ipRanges": ["e1"]}, PATH)
    assert once.ipRanges == ["e1"]


def test_R5_5_extend_settings_raises_on_problems() -> None:
    with pytest.raises(ClanError) as exc:
        extend_settings(PeerSettings, [role({"timeout": "a"})], {"timeout": "b"}, PATH)
    assert exc.value.problems[0].kind == "conflict"
    assert "extendSettings.timeout" in exc.value.problems[0].message


def test_R7_1_verified_example_mkforce_per_machine() -> None:
    class Timeout(BaseModel):
        timeout: str

    peer_role = SettingsDef({"timeout": "foo-peer"}, "instances.instance_foo.roles.peer.settings")
    jon = SettingsDef({"timeout": mk_force("foo-peer-jon")}, "instances.instance_foo.roles.peer.machines.jon.settings")
    model, problems = merge_settings(
        Timeout, [peer_role, jon], "instances.instance_foo.roles.peer.machines.jon.settings"
    )
    assert problems == [] and model is not None and model.timeout == "foo-peer-jon"
    # R5.9 role-only view
    model, _ = merge_settings(Timeout, [peer_role], "instances.instance_foo.roles.peer.settings")
    assert model is not None and model.timeout == "foo-peer"


# --------------------------------------------------------------------------------------------------
# Merger cache, schema, fast path


def test_merger_caches_successes_by_definition_identity() -> None:
    merger = SettingsMerger()
    r = role({"timeout": "x", "ipRanges": ["a"]})
    t = tag("t", {"ipRanges": ["b"]})
    a, _ = merger.merge(PeerSettings, [r, machine({}), t], PATH)
    b, _ = merger.merge(PeerSettings, [r, machine({}), t], PATH.replace("laptop", "desktop"))
    assert a is not None and a is b and merger.hits == 1
    bad = machine({"timeout": "y"})
    for _ in range(2):
        model, problems = merger.merge(PeerSettings, [r, bad], PATH)
        assert model is None and problems[0].kind == "conflict"


def test_settings_schema() -> None:
    schema = settings_schema(PeerSettings)
    assert schema["required"] == ["timeout"]
    assert schema["properties"]["ipRanges"]["type"] == "array"


def test_type_plan_is_cached_per_interface() -> None:
    assert model_plan(PeerSettings) is model_plan(PeerSettings)


def _wrapped(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        values, values, values, st.builds(mk_force, values), st.builds(mk_default, values), st.builds(mk_before, values)
    )


_small = st.one_of(st.none(), st.booleans(), st.integers(0, 2), st.text("ab", max_size=1))
_entry = st.one_of(
    st.tuples(st.just("count"), _wrapped(st.integers(0, 2))),
    st.tuples(st.just("flag"), _wrapped(st.booleans())),
    st.tuples(st.just("maybe"), _wrapped(st.one_of(st.none(), st.sampled_from(["a", "b"])))),
    st.tuples(st.just("tags"), _wrapped(st.lists(st.sampled_from(["a", "b"]), max_size=2))),
    st.tuples(st.just("level"), _wrapped(st.sampled_from(["a", "b"]))),
    st.tuples(st.just("extra"), _wrapped(st.dictionaries(st.sampled_from(["x", "y"]), _small, max_size=2))),
    st.tuples(st.just("data"), _wrapped(st.dictionaries(st.sampled_from(["x", "y"]), _wrapped(_small), max_size=2))),
    st.tuples(
        st.just("sub"),
        _wrapped(st.dictionaries(st.sampled_from(["enable", "subnet"]), _wrapped(st.booleans()), max_size=2)),
    ),
    st.tuples(st.sampled_from(["count", "flag", "tags", "sub", "bogus"]), _small),  # often wrong
)
_blocks = st.lists(_entry, max_size=4).map(dict)


@settings(max_examples=400, deadline=None)
@given(st.lists(_blocks, max_size=4))
def test_fast_paths_agree_with_general_merge(blocks: list[dict[str, Any]]) -> None:
    defs = [SettingsDef(b, f"src{i}", "clan.toml") for i, b in enumerate(blocks)]
    plan = model_plan(Typed)
    slow, problems = settings_mod._slow_merge(plan, Typed, defs, PATH, None)
    for fast in (
        settings_mod._fast_merge(plan, Typed, [b for b in blocks if b]),
        settings_mod._fast_merge(plan, Typed, [b for b in blocks if b], defs),
    ):
        if fast is not None:
            assert problems == [] and slow == fast
            assert slow is not None and fast.model_fields_set == slow.model_fields_set
    merged, problems2 = merge_settings(Typed, defs, PATH)
    assert merged == slow and problems2 == problems


def test_many_machines_merge_through_the_fast_path() -> None:
    """Behaviour only (timings are in benchmarks/): 5,000 machines, each with its own block."""

    class Small(BaseModel):
        ipRanges: list[str] = []
        timeout: str = "30s"
        port: int = 51820
        dynamicIp: DynamicIp = DynamicIp()

    r = role({"timeout": "60s", "ipRanges": ["10.0.0.0/8"]})
    t1, t2 = tag("a", {"port": 1}), tag("b", {"dynamicIp": {"enable": True}, "ipRanges": ["x"]})
    machines = [machine({"ipRanges": [f"10.{i}.0.0/16"]}) for i in range(5000)]
    plain = SettingsMerger(cache=False)
    for i, m in enumerate(machines):
        merged = plain.merge(Small, [r, m, t1, t2], PATH)[0]
        assert merged is not None and merged.ipRanges == ["x", f"10.{i}.0.0/16", "10.0.0.0/8"]


def test_R5_3_8_constraint_error_on_list_entry_names_its_definition() -> None:
    class S(BaseModel):
        hosts: list[Annotated[str, StringConstraints(pattern=r"^[a-z]+$")]] = []

    p = only(fail(S, role({"hosts": ["ok", "NO"]}), machine({"hosts": ["fine"]})), "settings-type")
    assert p.path == f"{PATH}.hosts[2]"  # machine entries come first (R5.3.3)
    assert "string matching the pattern ^[a-z]+$" in p.message
    assert f'- In `clan.toml, via option inventory.{ROLE_SRC}.hosts[1]\': "NO"' in p.message
    assert f"via option inventory.{MACHINE_SRC}" not in p.message


def test_R5_3_8_constraint_error_names_only_the_winning_definition() -> None:
    p = only(fail(Typed, role({"port": 5}), machine({"port": mk_force(0)})), "settings-type")
    assert f"{MACHINE_SRC}.port': 0" in p.message and ROLE_SRC not in p.message


def test_R5_3_6_conflict_with_interface_default_names_it() -> None:
    p = only(fail(PeerSettings, role({"timeout": "x", "ipRanges": mk_option_default(5)})), "settings-type")
    assert p.path == f"{PATH}.ipRanges"
    assert "the default of PeerSettings.ipRanges" not in p.message  # only the bad definition is listed
    p = only(fail(Typed, role({"name": mk_option_default("other")})), "conflict")
    assert '- In `the default of Typed.name\': ""' in p.message


def test_merger_extend_is_not_memoised() -> None:
    merger = SettingsMerger()
    defs = [role({"timeout": "plain"})]
    assert merger.extend(PeerSettings, defs, {"timeout": mk_force("a")}, PATH).timeout == "a"
    assert merger.extend(PeerSettings, defs, {"timeout": mk_force("b")}, PATH).timeout == "b"
    assert merger.hits == 0 and merger.misses == 0


def test_missing_is_reported_next_to_other_problems_but_not_after_a_broken_block() -> None:
    problems = fail(PeerSettings, role({"timout": "x"}))
    assert sorted(p.kind for p in problems) == ["missing-setting", "unknown-setting"]
    assert next(p for p in problems if p.kind == "unknown-setting").hint == "did you mean 'timeout'?"
    only(fail(PeerSettings, role("timeout = 5")), "settings-type")
