"""The JSON API: one registry, typed functions, JSON in and out, errors as data (never exceptions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyclan import api


def _starter(tmp_path: Path) -> str:
    created = api.init_clan(str(tmp_path / "c"), name="demo")
    return str(created.path)


def test_every_function_registered_once_and_described() -> None:
    with pytest.raises(RuntimeError, match="already registered"):
        api.register(api.REGISTRY["resolve_inventory"])
    described = {f["name"]: f for f in api.describe()}
    assert {"resolve_inventory", "list_machines", "get_machine_config", "run_generators"} <= set(described)
    for name, fn in described.items():
        assert fn["doc"], name
        assert fn["parameters"]["type"] == "object", name
        assert fn["result"], name
        assert "<class" not in json.dumps(fn), name
    assert "flake" in described["resolve_inventory"]["parameters"]["properties"]
    machine = described["list_machines"]["result"]
    assert machine["type"] == "array" and "$defs" in machine
    assert "progress" not in described["update_machines"]["parameters"]["properties"]


def test_every_cli_verb_has_an_api_function() -> None:
    """Each verb the CLI offers (but the interactive `ssh`) is a registered function."""
    verbs = {
        "init_clan", "get_clan_details", "check_clan", "list_machines", "create_machine", "delete_machine",
        "get_machine_config", "build_machine", "update_machines", "install_machine", "rollback_machine",
        "list_generations", "list_service_modules", "get_service_module", "resolve_inventory",
        "inventory_schema", "keygen", "run_generators", "list_vars", "get_var", "set_var", "check_vars",
        "list_inputs", "update_inputs", "hosts_up", "hosts_down", "hosts_status",
    }  # fmt: skip
    assert verbs <= set(api.load_all())


def test_call_success_and_error_envelopes(tmp_path: Path) -> None:
    flake = _starter(tmp_path)
    ok = api.call("list_machines", {"flake": flake})
    assert ok["status"] == "success"
    assert [m["name"] for m in ok["data"]] == ["my-machine"]
    config = api.call("get_machine_config", {"machine": "my-machine", "flake": flake})
    assert config["data"]["files"]["/etc/motd"]["content"] == "Welcome to demo\n"
    missing = api.call("get_machine_config", {"machine": "nope", "flake": flake})
    assert missing["status"] == "error"
    assert missing["errors"][0]["kind"] == "unknown-machine"
    bad_args = api.call("list_machines", {"flake": flake, "colour": "red"})
    assert bad_args["status"] == "error" and bad_args["errors"][0]["kind"] == "usage-error"
    wrong_type = api.call("list_machines", {"flake": flake, "tags": "server"})
    assert wrong_type["status"] == "error" and wrong_type["errors"][0]["path"] == "tags"
    hidden = api.call("update_machines", {"flake": flake, "progress": None})
    assert hidden["status"] == "error"
    json.dumps([ok, config, missing, bad_args, wrong_type, hidden])


def test_cli_api_call_is_the_same_function(tmp_path: Path) -> None:
    flake = _starter(tmp_path)
    pyclan = Path(sys.executable).with_name("pyclan")
    out = subprocess.run(
        [str(pyclan), "api", "call", "resolve_inventory", "--args", json.dumps({"flake": flake})],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(out.stdout)["data"] == api.to_jsonable(api.resolve_inventory(flake))


def test_init_refuses_existing_clan(tmp_path: Path) -> None:
    flake = _starter(tmp_path)
    result = api.call("init_clan", {"directory": flake})
    assert result["status"] == "error"
    assert "already exists" in result["errors"][0]["message"]


def test_missing_machine_is_one_error_everywhere(tmp_path: Path) -> None:
    """Every function naming a machine refuses an unknown one with the same kind, wording and hint."""
    flake = _starter(tmp_path)
    calls = {
        "get_machine_config": {"machine": "my-machin"},
        "list_vars": {"machine": "my-machin"},
        "get_var": {"machine": "my-machin", "var_id": "x/y"},
        "build_machine": {"machine": "my-machin"},
        "delete_machine": {"name": "my-machin"},
        "check_vars": {"machines": ["my-machin"]},
        "update_machines": {"machines": ["my-machin"]},
        "install_machine": {"machine": "my-machin"},
        "rollback_machine": {"machine": "my-machin"},
        "list_generations": {"machine": "my-machin"},
        "machines_status": {"machines": ["my-machin"]},
        "run_generators": {"machines": ["my-machin"]},
        "set_var": {"machine": "my-machin", "var_id": "x/y", "value": "v"},
        "ping_machines": {"machines": ["my-machin"]},
        "list_backups": {"machine": "my-machin"},
    }
    for name, args in calls.items():
        result = api.call(name, {**args, "flake": flake})
        assert result["status"] == "error", name
        (problem,) = result["errors"]
        assert problem == {
            "kind": "unknown-machine",
            "path": "machines.my-machin",
            "message": "no machine named 'my-machin' in the inventory",
            "hint": "did you mean 'my-machine'?",
        }, name


def test_unknown_tag_gets_did_you_mean(tmp_path: Path) -> None:
    flake = _starter(tmp_path)
    result = api.call("list_machines", {"flake": flake, "tags": ["servr"]})
    assert result["errors"][0]["kind"] == "unknown-tag"
    assert result["errors"][0]["hint"] == "did you mean 'server'?"
    assert [m["name"] for m in api.call("list_machines", {"flake": flake, "tags": ["server", "all"]})["data"]] == [
        "my-machine"
    ]


def test_warnings_are_objects_like_errors(tmp_path: Path) -> None:
    flake = Path(_starter(tmp_path))
    toml = (flake / "clan.toml").read_text().replace('domain = "clan"', 'tld = "lan"')
    (flake / "clan.toml").write_text(toml + '\n[tags]\nextra = ["my-machine", "ghost"]\n')
    data = api.call("check_clan", {"flake": str(flake)})["data"]
    kinds = {(w["kind"], w["path"]) for w in data["warnings"]}
    assert ("deprecated-option", "meta.tld") in kinds
    assert ("unknown-machine", "tags.extra") in kinds
    assert all(set(w) == {"kind", "path", "message"} for w in data["warnings"])


def test_update_and_install_take_one_options_object_with_a_described_schema(tmp_path: Path) -> None:
    """The rollout's many settings are one `options` object: each field typed, defaulted and described."""
    described = {f["name"]: f for f in api.describe()}
    for name in ("update_machines", "install_machine"):
        parameters = described[name]["parameters"]["properties"]
        assert "dry_run" not in parameters and "options" in parameters, name
        options = parameters["options"]
        assert options["additionalProperties"] is False
        assert {"dry_run", "host_key_check", "target_host", "connect_timeout"} <= set(options["properties"])
        assert all(field.get("description") for field in options["properties"].values()), name
    flake = _starter(tmp_path)
    wrong = api.call("update_machines", {"flake": flake, "options": {"dry_run": "maybe"}})
    assert wrong["errors"][0]["path"] == "options.dry_run"
    unknown = api.call("install_machine", {"machine": "my-machine", "flake": flake, "options": {"colour": "red"}})
    assert unknown["errors"][0]["path"] == "options.colour"
