"""The JSON API: one registry, JSON in and out, errors as data (never exceptions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyclan import api


def _starter(tmp_path: Path) -> str:
    created = api.init_clan(tmp_path / "c", name="demo")
    return str(created.path)


def test_every_function_registered_once_and_described() -> None:
    with pytest.raises(RuntimeError, match="already registered"):
        api.register(api.REGISTRY["resolve_inventory"])
    described = api.describe()
    assert {"resolve_inventory", "list_machines", "get_machine_config", "run_generators"} <= set(described)
    assert "flake" in described["resolve_inventory"]["arguments"]


def test_call_success_and_error_envelopes(tmp_path: Path) -> None:
    flake = _starter(tmp_path)
    ok = api.call("list_machines", {"flake": flake})
    assert ok["status"] == "success"
    assert list(ok["data"]) == ["my-machine"]
    config = api.call("get_machine_config", {"machine": "my-machine", "flake": flake})
    assert config["data"]["files"]["/etc/motd"]["content"] == "Welcome to demo\n"
    missing = api.call("get_machine_config", {"machine": "nope", "flake": flake})
    assert missing["status"] == "error"
    assert missing["errors"][0]["kind"] == "unknown-machine"
    bad_args = api.call("list_machines", {"flake": flake, "colour": "red"})
    assert bad_args["status"] == "error" and bad_args["errors"][0]["kind"] == "usage-error"
    json.dumps([ok, config, missing, bad_args])


def test_cli_api_call_is_the_same_function(tmp_path: Path) -> None:
    flake = _starter(tmp_path)
    pyclan = Path(sys.executable).with_name("pyclan")
    out = subprocess.run(
        [str(pyclan), "api", "call", "resolve_inventory", "--args", json.dumps({"flake": flake})],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(out.stdout)["data"] == api.resolve_inventory(flake)


def test_init_refuses_existing_clan(tmp_path: Path) -> None:
    flake = _starter(tmp_path)
    result = api.call("init_clan", {"directory": flake})
    assert result["status"] == "error"
    assert "already exists" in result["errors"][0]["message"]
