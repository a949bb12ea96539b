"""Loading a clan's inventory: one test per rule of clan-semantics §1 (and R4.2), named after it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyclan.errors import ClanError, Problem
from pyclan.inventory.load import (
    LoadedInventory,
    find_clan_dir,
    load_inventory,
    load_inventory_data,
    settings_path,
)
from pyclan.inventory.models import Inventory, RoleTag
from pyclan.inventory.schema import inventory_json_schema
from pyclan.inventory.tags import effective_tags, machines_with_tag

# --------------------------------------------------------------------------------------------
# helpers


def clan(tmp_path: Path, toml: str | None = None, json_data: Any = None, machines: tuple[str, ...] = ()) -> Path:
    if toml is not None:
        (tmp_path / "clan.toml").write_text(toml)
    if json_data is not None:
        text = json_data if isinstance(json_data, str) else json.dumps(json_data, indent=2)
        (tmp_path / "inventory.json").write_text(text)
    for name in machines:
        (tmp_path / "machines" / name).mkdir(parents=True)
    return tmp_path


def problems_of(clan_dir: Path) -> list[Problem]:
    with pytest.raises(ClanError) as info:
        load_inventory(clan_dir)
    return info.value.problems


def data_problems(*sources: tuple[str, Any]) -> list[Problem]:
    with pytest.raises(ClanError) as info:
        load_inventory_data(list(sources))
    return info.value.problems


def one(problems: list[Problem], kind: str, path: str) -> Problem:
    found = [p for p in problems if p.kind == kind and p.path == path]
    assert len(found) == 1, f"expected one {kind} at {path!r}, got:\n" + "\n".join(p.render() for p in problems)
    return found[0]


META = '[meta]\nname = "test"\n'


# --------------------------------------------------------------------------------------------
# R1.1 sources


def test_R1_1_single_toml(tmp_path: Path) -> None:
    loaded = load_inventory(
        clan(
            tmp_path,
            META
            + """
[machines.server1]
tags = ["server"]
deploy.targetHost = "root@server1.lan"

[instances.my-vpn]
module.name = "zerotier"
roles.peer.tags = ["all"]
roles.peer.settings.ipRanges = ["all"]
roles.controller.machines.server1.settings.dynamicIp.enable = true
""",
        )
    )
    assert isinstance(loaded, LoadedInventory)
    assert loaded.files == ["clan.toml"]
    assert loaded.clan_dir == tmp_path
    inv = loaded.inventory
    assert inv.meta.name == "test"
    assert inv.machines["server1"].deploy.targetHost == "root@server1.lan"
    role = inv.instances["my-vpn"].roles["controller"]
    assert role.machines["server1"].settings == {"dynamicIp": {"enable": True}}
    assert loaded.settings_files == {
        "instances.my-vpn.roles.peer.settings": "clan.toml",
        "instances.my-vpn.roles.controller.machines.server1.settings": "clan.toml",
    }
    assert loaded.warnings == []


def test_R1_1_sources_merge(tmp_path: Path) -> None:
    """Attrsets merge key by key, lists concatenate (clan.toml first), equal scalars are fine."""
    loaded = load_inventory(
        clan(
            tmp_path,
            META + '[machines.a]\ntags = ["x"]\nmachineClass = "nixos"\n[tags]\nstatic = ["a"]\n',
            {
                "meta": {"name": "test", "description": "hi"},
                "machines": {"a": {"tags": ["y"], "machineClass": "nixos"}, "b": {}},
                "tags": {"static": ["b"]},
            },
        )
    )
    inv = loaded.inventory
    assert loaded.files == ["clan.toml", "inventory.json"]
    assert inv.meta.description == "hi"
    assert inv.machines["a"].tags == ["x", "y"]
    assert set(inv.machines) == {"a", "b"}
    assert inv.tags["static"] == ["a", "b"]


def test_R1_1_scalar_conflict_names_both_files(tmp_path: Path) -> None:
    problems = problems_of(
        clan(
            tmp_path,
            META + '[machines.a]\nmachineClass = "nixos"\ndeploy.targetHost = "x"\n',
            {"machines": {"a": {"machineClass": "darwin", "deploy": {"targetHost": ["x"]}}}},
        )
    )
    conflict = one(problems, "conflict", "machines.a.machineClass")
    assert "clan.toml" in conflict.message and "inventory.json" in conflict.message
    assert '"nixos"' in conflict.message and '"darwin"' in conflict.message
    assert conflict.file == "clan.toml"
    typed = one(problems, "conflict", "machines.a.deploy.targetHost")
    assert "a string in clan.toml and a list in inventory.json" in typed.message


def test_R1_1c_machines_folder(tmp_path: Path) -> None:
    loaded = load_inventory(clan(tmp_path, META + '[machines.jon]\ntags = ["laptop"]\n', machines=("jon", "sara")))
    machines = loaded.inventory.machines
    assert set(machines) == {"jon", "sara"}
    assert machines["sara"].name == "sara"
    assert machines["jon"].tags == ["laptop"]
    assert loaded.files == ["clan.toml"]


def test_R1_1c_machines_folder_name_checked(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, META, machines=("bad_name",)))
    problem = one(problems, "inventory-type", "machines.bad_name")
    assert problem.file == "machines/bad_name"


def test_R1_1c_folder_only_clan_dir_without_meta(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, machines=("jon",)))
    one(problems, "inventory-type", "meta.name")


# --------------------------------------------------------------------------------------------
# R1.2 top-level keys


def test_R1_2_services_key_removed(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, META, {"services": {}}))
    problem = one(problems, "inventory-removed-option", "services")
    assert "The `inventory.services` option has been removed. Use `inventory.instances` instead." in problem.message
    assert problem.file == "inventory.json"
    assert problem.hint is not None and "[instances." in problem.hint


def test_R1_2_unknown_top_level_key(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, META + "[instance.x]\n"))
    problem = one(problems, "inventory-unknown-field", "instance")
    assert problem.message == "The option `inventory.instance' does not exist"
    assert problem.hint is not None and "instances" in problem.hint


def test_R1_2_legacy_modules_ignored(tmp_path: Path) -> None:
    loaded = load_inventory(clan(tmp_path, META, {"modules": {"legacy": "./x"}}))
    assert loaded.inventory.instances == {}


# --------------------------------------------------------------------------------------------
# R1.3 meta


def test_R1_3_meta_domain_default(tmp_path: Path) -> None:
    plain = load_inventory_data([("clan.toml", {"meta": {"name": "a"}})])
    assert plain.inventory.meta.effective_domain == "clan"
    assert plain.warnings == []

    tld = load_inventory_data([("clan.toml", {"meta": {"name": "a", "tld": "lan"}})])
    assert tld.inventory.meta.effective_domain == "lan"
    assert any("tld" in w and "deprecated" in w for w in tld.warnings)

    domain = load_inventory_data([("clan.toml", {"meta": {"name": "a", "domain": "home.example.org"}})])
    assert domain.inventory.meta.effective_domain == "home.example.org"

    problems = data_problems(("clan.toml", {"meta": {"name": "a", "domain": "Bad_Domain", "tld": "x1"}}))
    assert one(problems, "inventory-type", "meta.domain").message.startswith("expected a string matching")
    one(problems, "inventory-type", "meta.tld")


def test_R1_3_meta_name_required(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, "[machines.a]\n"))
    problem = one(problems, "inventory-type", "meta.name")
    assert "The option `inventory.meta.name' was accessed but has no value defined" in problem.message
    assert problem.file == "clan.toml"
    assert problem.hint is not None and "name" in problem.hint

    problems = data_problems(("clan.toml", {"meta": {"description": "x"}}))
    one(problems, "inventory-type", "meta.name")


def test_R1_3_meta_name_pattern() -> None:
    assert load_inventory_data([("clan.toml", {"meta": {"name": ""}})]).inventory.meta.name == ""
    problems = data_problems(("clan.toml", {"meta": {"name": "my clan"}}))
    assert one(problems, "inventory-type", "meta.name").hint is not None


# --------------------------------------------------------------------------------------------
# R1.4 machines


def test_R1_4_machine_defaults() -> None:
    inv = load_inventory_data([("clan.toml", {"meta": {"name": "t"}, "machines": {"jon": {}}})]).inventory
    jon = inv.machines["jon"]
    assert jon.name == "jon"
    assert jon.machineClass == "nixos"
    assert jon.tags == []
    assert jon.description is None and jon.icon is None and jon.installedAt is None
    assert (jon.deploy.targetHost, jon.deploy.buildHost, jon.deploy.forwardAgent) == (None, None, None)

    named = load_inventory_data(
        [
            (
                "clan.toml",
                {"meta": {"name": "t"}, "machines": {"jon": {"name": "other", "tags": ["a", "b", "a"]}}},
            )
        ]
    ).inventory.machines["jon"]
    assert named.name == "other"
    assert named.tags == ["a", "b"]  # apply = unique


def test_R1_4_unknown_machine_field(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, META + '[machines.jon]\ntag = ["x"]\ntargetHost = "root@jon"\nfoo = 1\n'))
    tag = one(problems, "inventory-unknown-field", "machines.jon.tag")
    assert tag.message == "The option `inventory.machines.jon.tag' does not exist"
    assert tag.file == "clan.toml"
    assert tag.hint is not None and "'tags'" in tag.hint
    host = one(problems, "inventory-unknown-field", "machines.jon.targetHost")
    assert host.hint == "did you mean `deploy.targetHost`?"
    foo = one(problems, "inventory-unknown-field", "machines.jon.foo")
    assert foo.hint is not None and "machineClass" in foo.hint  # lists the valid fields


def test_R1_4_machine_field_types() -> None:
    problems = data_problems(
        (
            "clan.toml",
            {
                "meta": {"name": "t"},
                "machines": {
                    "a": {"machineClass": "windows", "tags": ["ok", 1], "installedAt": "yesterday"},
                    "b": {"deploy": {"forwardAgent": "yes"}, "installedAt": True},
                },
            },
        )
    )
    assert 'one of "nixos", "darwin"' in one(problems, "inventory-type", "machines.a.machineClass").message
    tags = one(problems, "inventory-type", "machines.a.tags")
    assert tags.message.startswith("expected a list of strings")
    assert "item 1 is an integer" in tags.message
    assert "integer" in one(problems, "inventory-type", "machines.a.installedAt").message
    assert "boolean" in one(problems, "inventory-type", "machines.b.deploy.forwardAgent").message
    one(problems, "inventory-type", "machines.b.installedAt")  # a boolean is not an integer


def test_R1_4_machine_name_rule() -> None:
    ok = load_inventory_data([("x", {"meta": {"name": "t"}, "machines": {"a": {}, "web-1": {}, "Db2": {}}})])
    assert set(ok.inventory.machines) == {"a", "web-1", "Db2"}  # case-insensitive like Clan's API
    long_name = "a" * 64
    problems = data_problems(
        ("clan.toml", {"meta": {"name": "t"}, "machines": {"-a": {}, "a_b": {}, "a.b": {}, long_name: {}}})
    )
    for path in ("machines.-a", "machines.a_b", "machines.a.b", f"machines.{long_name}"):
        problem = one(problems, "inventory-type", path)
        assert problem.hint is not None and "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" in problem.hint
        assert problem.file == "clan.toml"


# --------------------------------------------------------------------------------------------
# R1.5 / R1.6 / R4.2 tags


def test_R1_5_effective_tags_order() -> None:
    inv = load_inventory_data(
        [
            (
                "clan.toml",
                {
                    "meta": {"name": "t"},
                    "machines": {
                        "m": {"tags": ["zeta", "alpha", "zeta"]},
                        "mac": {"machineClass": "darwin"},
                    },
                    "tags": {"static": ["m"], "b": ["m"]},
                },
            )
        ]
    ).inventory
    tags = effective_tags(inv)
    assert tags["m"] == ["zeta", "alpha", "all", "b", "nixos", "static"]
    assert tags["mac"] == ["all", "darwin"]


def test_R1_6_builtin_tags_overridable() -> None:
    inv = load_inventory_data(
        [
            (
                "clan.toml",
                {
                    "meta": {"name": "t"},
                    "machines": {"a": {}, "b": {}, "c": {"machineClass": "darwin"}},
                    "tags": {"all": ["a"]},
                },
            )
        ]
    ).inventory
    with_tag = machines_with_tag(inv)
    assert with_tag["all"] == {"a"}  # the user's list replaces the mkDefault value
    assert with_tag["nixos"] == {"a", "b"}
    assert with_tag["darwin"] == {"c"}
    assert effective_tags(inv)["b"] == ["nixos"]


def test_R4_2_tags_only_resolve_against_inventory_machines() -> None:
    loaded = load_inventory_data(
        [
            (
                "clan.toml",
                {
                    "meta": {"name": "t"},
                    "machines": {"server": {"tags": ["web"]}},
                    "tags": {"backup": ["server", "servr", "ghost"]},
                },
            )
        ]
    )
    with_tag = machines_with_tag(loaded.inventory)
    assert with_tag["backup"] == {"server"}
    assert with_tag["web"] == {"server"}
    assert with_tag["darwin"] == set()
    assert any("'ghost'" in w for w in loaded.warnings)
    assert any("'servr'" in w and "did you mean 'server'" in w for w in loaded.warnings)


# --------------------------------------------------------------------------------------------
# R1.7 instances


def test_R1_7_role_tags_list_coerced(tmp_path: Path) -> None:
    loaded = load_inventory(
        clan(
            tmp_path,
            META + '[instances.vpn.roles.peer]\ntags = ["laptop", "server"]\n',
            {"instances": {"vpn": {"roles": {"peer": {"tags": {"laptop": {"settings": {"x": 1}}}}}}}},
        )
    )
    role = loaded.inventory.instances["vpn"].roles["peer"]
    assert role.tags == {"laptop": RoleTag(settings={"x": 1}), "server": RoleTag()}
    assert loaded.settings_files == {"instances.vpn.roles.peer.tags.laptop.settings": "inventory.json"}


def test_R1_7_instance_defaults() -> None:
    inv = load_inventory_data([("clan.toml", {"meta": {"name": "t"}, "instances": {"wifi": {}}})]).inventory
    wifi = inv.instances["wifi"]
    assert wifi.module_name("wifi") == "wifi"
    assert wifi.module.input is None
    assert wifi.roles == {}


def test_R1_7_unknown_role_field(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, META + "[instances.x.roles.peer]\nfoo = 1\nsetings = {}\n"))
    foo = one(problems, "inventory-unknown-field", "instances.x.roles.peer.foo")
    assert foo.message == "The option `inventory.instances.x.roles.peer.foo' does not exist"
    setings = one(problems, "inventory-unknown-field", "instances.x.roles.peer.setings")
    assert setings.hint == "did you mean 'settings'?"


def test_R1_7_role_machines_must_be_attrset() -> None:
    problems = data_problems(
        ("clan.toml", {"meta": {"name": "t"}, "instances": {"x": {"roles": {"r": {"machines": ["a"]}}}}})
    )
    problem = one(problems, "inventory-type", "instances.x.roles.r.machines")
    assert problem.hint is not None and "machines.<name> = {}" in problem.hint


# --------------------------------------------------------------------------------------------
# R1.8 settings blocks


def test_R1_8a_settings_must_be_json_object(tmp_path: Path) -> None:
    problems = problems_of(
        clan(
            tmp_path,
            META
            + "[instances.x.roles.r]\nsettings = [1]\n"
            + "[instances.x.roles.s.settings]\nwhen = 1979-05-27T07:32:00Z\n",
        )
    )
    listed = one(problems, "settings-type", "instances.x.roles.r.settings")
    assert listed.message == (
        "A definition for option `inventory.instances.x.roles.r.settings' is not of type `deferred custom module. "
        "Must be JSON serializable.'. Definition values:\n"
        "- In `clan.toml, via option inventory.instances.x.roles.r.settings': [1]"
    )
    dated = one(problems, "settings-type", "instances.x.roles.s.settings")
    assert "JSON-serialisable" in dated.message and "`when`" in dated.message and "date-time" in dated.message
    assert "is not of type `deferred custom module. Must be JSON serializable.'" in dated.message
    assert '"when": "1979-05-27T07:32:00+00:00"' in dated.message


def test_R1_8b_settings_defined_twice(tmp_path: Path) -> None:
    problems = problems_of(
        clan(
            tmp_path,
            META
            + "[instances.vpn.roles.peer]\nsettings = {}\n"
            + "[instances.vpn.roles.peer.machines.jon.settings]\na = 1\n"
            + "[instances.vpn.roles.peer.tags.laptop.settings]\n",
            {
                "instances": {
                    "vpn": {
                        "roles": {
                            "peer": {
                                "settings": {},
                                "machines": {"jon": {"settings": {"a": 1}}},
                                "tags": {"laptop": {"settings": {"b": 2}}},
                            }
                        }
                    }
                }
            },
        )
    )
    for path in (
        "instances.vpn.roles.peer.settings",
        "instances.vpn.roles.peer.machines.jon.settings",
        "instances.vpn.roles.peer.tags.laptop.settings",
    ):
        problem = one(problems, "duplicate-definition", path)
        assert "is defined multiple times while it's expected to be unique" in problem.message
        assert "clan.toml" in problem.message and "inventory.json" in problem.message
    assert not [p for p in problems if p.kind == "conflict"]


def test_R1_8b_settings_in_different_files_are_fine(tmp_path: Path) -> None:
    loaded = load_inventory(
        clan(
            tmp_path,
            META + "[instances.vpn.roles.peer.settings]\na = 1\n",
            {"instances": {"vpn": {"roles": {"peer": {"machines": {"jon": {"settings": {"a": 2}}}}}}}},
        )
    )
    assert loaded.settings_files == {
        "instances.vpn.roles.peer.settings": "clan.toml",
        settings_path("vpn", "peer", machine="jon"): "inventory.json",
    }
    assert settings_path("vpn", "peer", tag="laptop") == "instances.vpn.roles.peer.tags.laptop.settings"


def test_R1_8c_imports_forbidden(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, META + "[instances.x.roles.r.settings]\nimports = []\n"))
    problem = one(problems, "settings-type", "instances.x.roles.r.settings")
    assert "uniqueDeferredSerializableModule doesn't allow nested imports" in problem.message
    # nested `imports` is an ordinary setting
    loaded = load_inventory_data(
        [
            (
                "x",
                {
                    "meta": {"name": "t"},
                    "instances": {"x": {"roles": {"r": {"settings": {"a": {"imports": 1}}}}}},
                },
            )
        ]
    )
    assert loaded.inventory.instances["x"].roles["r"].settings == {"a": {"imports": 1}}


# --------------------------------------------------------------------------------------------
# parse errors, problem reporting


def test_parse_error_toml_line_column(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, '[meta]\nname = "x"\n\n[machines.a]\ntags = [1,\n'))
    assert len(problems) == 1
    problem = problems[0]
    assert problem.kind == "parse-error" and problem.file == "clan.toml"
    assert problem.line is not None and problem.column is not None
    assert problem.message.startswith("invalid TOML")

    problems = problems_of(clan(tmp_path, '[meta]\nname = "x"\nname = "y"\n'))
    assert (problems[0].line, problems[0].column) == (3, 11)


def test_parse_error_json_line_column(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, json_data='{\n  "meta": {"name": "x"},\n  "machines": {,}\n}'))
    assert len(problems) == 1
    problem = problems[0]
    assert problem.kind == "parse-error" and problem.file == "inventory.json"
    assert (problem.line, problem.column) == (3, 16)
    assert "clan.toml" not in problem.render() and "inventory.json:3:16" in problem.render()


def test_parse_error_json_nan(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, json_data='{"meta": {"name": "x"},\n "a": NaN}'))
    assert problems[0].kind == "parse-error"
    assert (problems[0].line, problems[0].column) == (2, 7)


def test_parse_errors_in_both_files_reported_together(tmp_path: Path) -> None:
    problems = problems_of(clan(tmp_path, "[meta\n", json_data="{"))
    assert [p.file for p in problems] == ["clan.toml", "inventory.json"]
    assert all(p.kind == "parse-error" for p in problems)


def test_parse_error_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "clan.toml").write_bytes(b'[meta]\nname = "\xff"\n')
    problems = problems_of(tmp_path)
    assert problems[0].kind == "parse-error" and problems[0].line == 2


def test_all_problems_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        clan(
            tmp_path,
            '[meta]\nname = "bad name"\n[machines.a]\nmachineClass = "bsd"\n',
            {
                "services": {"x": {}},
                "machines": {"b": {"colour": "red"}},
                "instances": {"i": {"roles": {"r": {"settings": 1, "machines": {"a": {"settings": []}}}}}},
            },
        )
    )
    by_file = {(p.file, p.kind, p.path) for p in problems}
    assert by_file >= {
        ("clan.toml", "inventory-type", "meta.name"),
        ("clan.toml", "inventory-type", "machines.a.machineClass"),
        ("inventory.json", "inventory-removed-option", "services"),
        ("inventory.json", "inventory-unknown-field", "machines.b.colour"),
        ("inventory.json", "settings-type", "instances.i.roles.r.settings"),
        ("inventory.json", "settings-type", "instances.i.roles.r.machines.a.settings"),
    }
    assert len(problems) == len(set(problems))
    text = str(ClanError(problems))
    assert "Traceback" not in text


def test_top_level_not_an_attrset() -> None:
    problems = data_problems(("inventory.json", [1, 2]))
    assert any(p.kind == "inventory-type" and p.file == "inventory.json" for p in problems)


def test_inputs_need_exactly_one_source() -> None:
    problems = data_problems(("clan.toml", {"meta": {"name": "t"}, "inputs": {"up": {}}}))
    assert "exactly one" in one(problems, "inventory-type", "inputs.up").message


def test_input_data_not_mutated() -> None:
    raw = {
        "meta": {"name": "t"},
        "services": {},
        "instances": {"x": {"roles": {"r": {"tags": ["a"]}}}},
    }
    before = copy.deepcopy(raw)
    with pytest.raises(ClanError):
        load_inventory_data([("clan.toml", raw), ("inventory.json", {"machines": {"a": {}}})])
    assert raw == before


# --------------------------------------------------------------------------------------------
# finding the clan directory


def test_find_clan_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c").mkdir()
    root = clan(tmp_path / "c", META)
    deep = root / "services" / "sub"
    deep.mkdir(parents=True)
    assert find_clan_dir(start=deep) == root.resolve()
    assert find_clan_dir(flake=root) == root.resolve()

    monkeypatch.chdir(deep)
    assert find_clan_dir() == root.resolve()

    other = tmp_path / "other"
    (other / "machines" / "a").mkdir(parents=True)
    monkeypatch.setenv("CLAN_DIR", str(other))
    assert find_clan_dir() == other.resolve()  # a machines/ folder is enough when named explicitly
    assert find_clan_dir(start=deep) == root.resolve()  # an explicit start searches from there
    assert find_clan_dir(flake=root) == root.resolve()  # -C wins over $CLAN_DIR


def test_find_clan_dir_not_found(tmp_path: Path) -> None:
    with pytest.raises(ClanError) as info:
        find_clan_dir(start=tmp_path)
    problem = info.value.problems[0]
    assert problem.kind == "usage-error"
    assert problem.hint is not None and "pyclan init" in problem.hint and "-C" in problem.hint

    with pytest.raises(ClanError) as info:
        find_clan_dir(flake=tmp_path)
    assert info.value.problems[0].kind == "usage-error"
    with pytest.raises(ClanError):
        find_clan_dir(flake=tmp_path / "missing")


# --------------------------------------------------------------------------------------------
# schema


def test_inventory_json_schema() -> None:
    schema = inventory_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"meta", "machines", "tags", "instances"} <= set(schema["properties"])
    assert schema["required"] == ["meta"]
    schema["properties"].clear()
    assert inventory_json_schema()["properties"]  # callers get a copy


# --------------------------------------------------------------------------------------------
# speed


def big_inventory(machines: int) -> dict[str, Any]:
    inv: dict[str, Any] = {
        "meta": {"name": "big"},
        "machines": {
            f"m{i}": {"tags": ["fleet", f"group{i % 10}"], "deploy": {"targetHost": f"root@m{i}"}}
            for i in range(machines)
        },
        "tags": {"static": [f"m{i}" for i in range(0, machines, 7)]},
        "instances": {},
    }
    for k in range(10):
        inv["instances"][f"inst{k}"] = {
            "module": {"name": f"svc{k}"},
            "roles": {
                "server": {"machines": {f"m{k}": {"settings": {"port": k}}, f"m{k + 1}": {}}},
                "client": {"tags": [f"group{k}", "fleet"], "settings": {"x": True}},
            },
        }
    return inv


def test_load_10k_machines(tmp_path: Path) -> None:
    # Timing is measured by benchmarks/eval_scale.py, never asserted in tests.
    (tmp_path / "inventory.json").write_text(json.dumps(big_inventory(10_000)))
    loaded = load_inventory(tmp_path)
    assert len(loaded.inventory.machines) == 10_000
    assert len(machines_with_tag(loaded.inventory)["fleet"]) == 10_000


# --------------------------------------------------------------------------------------------
# fuzzing: whatever the input, the loader returns or raises ClanError


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

KEYS = st.sampled_from(
    [
        "meta", "name", "machines", "tags", "instances", "roles", "settings", "module", "input",
        "services", "imports", "machineClass", "deploy", "targetHost", "extraModules", "a", "jon", "peer",
    ]
)  # fmt: skip

VALID: dict[str, Any] = {
    "meta": {"name": "t", "domain": "lan"},
    "machines": {"jon": {"tags": ["laptop"], "deploy": {"targetHost": "root@jon"}}, "sara": {}},
    "tags": {"static": ["jon"]},
    "instances": {
        "vpn": {
            "module": {"name": "zerotier", "input": None},
            "roles": {
                "peer": {
                    "tags": ["laptop"],
                    "machines": {"sara": {"settings": {"a": [1]}}},
                    "settings": {"x": {"y": True}},
                    "extraModules": [],
                },
                "controller": {"tags": {"all": {"settings": {}}}},
            },
        }
    },
}


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any] = VALID) -> Any:
    data: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        # walk to a random container, then replace, add or delete a key
        node = data
        while isinstance(node, dict) and node and draw(st.booleans()):
            child = node[draw(st.sampled_from(sorted(node)))]
            if not isinstance(child, dict):
                break
            node = child
        if not isinstance(node, dict):
            continue
        action = draw(st.sampled_from(["replace", "add", "delete"]))
        if action == "delete" and node:
            del node[draw(st.sampled_from(sorted(node)))]
        elif action == "replace" and node:
            node[draw(st.sampled_from(sorted(node)))] = draw(json_values)
        else:
            node[draw(KEYS | st.text(max_size=6))] = draw(json_values | st.just({}))
    return data


def must_not_crash(sources: list[tuple[str, Any]], machine_dirs: list[str] | None = None) -> None:
    try:
        loaded = load_inventory_data(sources, machine_dirs=machine_dirs or [])
    except ClanError as exc:
        assert exc.problems
        for problem in exc.problems:
            json.dumps(problem.to_json())
            problem.render()
        return
    assert isinstance(loaded.inventory, Inventory)
    effective_tags(loaded.inventory)
    machines_with_tag(loaded.inventory)
    json.dumps(loaded.inventory.model_dump(mode="json"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_fuzz_random_values(value: Any) -> None:
    must_not_crash([("inventory.json", value)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), mutated(), st.lists(st.sampled_from(["jon", "new", "Bad_", ""]), max_size=2))
def test_fuzz_mutated_inventories(first: Any, second: Any, dirs: list[str]) -> None:
    must_not_crash([("clan.toml", first)], dirs)
    must_not_crash([("clan.toml", first), ("inventory.json", second)], dirs)


def test_fuzz_oddities() -> None:
    deep: Any = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    cyclic: dict[str, Any] = {"meta": {"name": "t"}}
    cyclic["instances"] = {"x": {"roles": {"r": {"settings": {"self": cyclic}}}}}
    for sources in (
        [("a", {"meta": {"name": "t"}, "modules": deep}), ("b", {"modules": deep})],
        [("a", {"meta": {"name": "t"}, "instances": {"x": {"roles": {"r": {"settings": {"d": deep}}}}}})],
        [("a", cyclic)],
        [("a", {"meta": {"name": "t"}, "machines": {1: {}, None: {}}})],
        [("a", {"meta": {"name": "t"}, "instances": {"x": {"roles": {"r": {"settings": {"s": {1, 2}}}}}}})],
        [("a", {"meta": {"name": "t"}, "tags": {"t": [float("nan")]}})],
        [("a", None), ("b", "x")],
        [],
    ):
        must_not_crash(sources)
