"""Inventory writes through the CLI: `--json` prints exactly the API's result; concurrent writers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyclan import api
from pyclan.cli.main import app
from pyclan.cli.write_cmds import parse_value
from pyclan.errors import ClanError

from .writes_support import files_of, make_clan


def pyclan(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


# (CLI arguments after `pyclan -C DIR`, API function, its arguments besides `flake`)
VERBS: list[tuple[list[str], str, dict[str, Any]]] = [
    (["instances", "list"], "list_instances", {}),
    (["instances", "show", "demo"], "show_instance", {"name": "demo"}),
    (["instances", "create", "hello-2", "--module", "hello-world"], "create_instance",
     {"name": "hello-2", "module": "hello-world"}),
    (["instances", "create", "demo-2", "--module", "demo", "--input", "self"], "create_instance",
     {"name": "demo-2", "module": "demo", "input": "self"}),
    (["instances", "delete", "hello"], "delete_instance", {"name": "hello"}),
    (["instances", "add-member", "demo", "server", "--machine", "laptop", "--tag", "backup"], "add_member",
     {"instance": "demo", "role": "server", "machines": ["laptop"], "tags": ["backup"]}),
    (["instances", "remove-member", "hello", "morning", "--tag", "server"], "remove_member",
     {"instance": "hello", "role": "morning", "tags": ["server"]}),
    (["settings", "get", "demo", "server", "port"], "get_setting",
     {"instance": "demo", "role": "server", "path": "port"}),
    (["settings", "get", "hello", "morning", "--machine", "web"], "get_setting",
     {"instance": "hello", "role": "morning", "machine": "web"}),
    (["settings", "set", "demo", "server", "port", "9000"], "set_setting",
     {"instance": "demo", "role": "server", "path": "port", "value": 9000}),
    (["settings", "set", "demo", "server", "names", '["a", "b"]', "--tag", "backup", "--force"], "set_setting",
     {"instance": "demo", "role": "server", "path": "names", "value": ["a", "b"], "tag": "backup", "force": True}),
    (["settings", "set", "hello", "morning", "greeting", "Moin", "--machine", "db", "--default"], "set_setting",
     {"instance": "hello", "role": "morning", "path": "greeting", "value": "Moin", "machine": "db",
      "default": True}),
    (["settings", "unset", "demo", "server", "port"], "unset_setting",
     {"instance": "demo", "role": "server", "path": "port"}),
    (["machines", "set", "web", "--description", "Web", "--tags", "a", "b", "--target-host", "root@web"],
     "set_machine", {"name": "web", "description": "Web", "tags": ["a", "b"], "target_host": "root@web"}),
    (["meta", "set", "--description", "Our fleet"], "set_meta", {"description": "Our fleet"}),
    (["meta", "show"], "get_clan_details", {}),
    (["inventory", "state"], "get_inventory_state", {}),
    (["tags", "list"], "list_tags", {}),
    (["tags", "set", "edge", "--machine", "web", "--machine", "laptop"], "set_tag",
     {"name": "edge", "machines": ["web", "laptop"]}),
]


@pytest.mark.parametrize(("cli", "name", "args"), VERBS, ids=[" ".join(v[0]) for v in VERBS])
def test_cli_json_equals_api_result(tmp_path: Path, cli: list[str], name: str, args: dict[str, Any]) -> None:
    by_cli = make_clan(tmp_path / "a")
    by_api = make_clan(tmp_path / "b")
    code, out = pyclan("-C", str(by_cli), *cli, "--json")
    assert code == 0, out
    expected = api.to_jsonable(getattr(api, name)(**args, flake=str(by_api)))
    assert json.loads(out) == expected
    assert files_of(by_cli) == files_of(by_api)  # the same change, to the byte


def test_cli_refusal_prints_the_problem_and_writes_nothing(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c")
    before = files_of(root)
    code, out = pyclan("-C", str(root), "settings", "set", "demo", "server", "prot", "1", "--json")
    assert code == 1
    (problem,) = json.loads(out)["errors"]
    assert problem["kind"] == "unknown-setting" and problem["hint"] == "did you mean 'port'?"
    assert files_of(root) == before


def test_values_are_json_then_toml_then_strings() -> None:
    assert parse_value("8080") == 8080
    assert parse_value('{"a": [1, true]}') == {"a": [1, True]}
    assert parse_value("{ a = 1, b = 'x' }") == {"a": 1, "b": "x"}
    assert parse_value("'single'") == "single"
    assert parse_value("plain words") == "plain words"
    assert parse_value("true") is True


def test_two_threads_with_a_stale_hash_one_is_refused(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c")
    stale = api.get_inventory_state(str(root)).hash
    start = threading.Barrier(2)
    outcomes: dict[int, Any] = {}

    def writer(port: int) -> None:
        start.wait()
        try:
            outcomes[port] = api.set_setting("demo", "server", "port", port, expected_hash=stale, flake=str(root))
        except ClanError as err:
            outcomes[port] = err.problems[0]

    threads = [threading.Thread(target=writer, args=(p,)) for p in (1001, 1002)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [o for o in outcomes.values() if not hasattr(o, "hash")]
    applied = [p for p, o in outcomes.items() if hasattr(o, "hash")]
    assert len(refused) == 1 and len(applied) == 1
    assert refused[0].kind == "inventory-changed"
    assert refused[0].message == "the inventory changed since it was read"
    assert api.get_setting("demo", "server", path="port", flake=str(root)).value == applied[0]


def test_two_processes_with_a_stale_hash_one_is_refused(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c")
    stale = api.get_inventory_state(str(root)).hash
    exe = shutil.which("pyclan", path=str(Path(sys.executable).parent)) or "pyclan"
    env = {**os.environ, "CLAN_DIR": str(root)}
    procs = [
        subprocess.Popen([exe, "settings", "set", "demo", "server", "port", str(port), "--expected-hash", stale,
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        for port in (2001, 2002)
    ]
    outputs = [p.communicate()[0] for p in procs]
    results = [(p.returncode, json.loads(out)) for p, out in zip(procs, outputs, strict=True)]
    assert sorted(code for code, _ in results) == [0, 1]
    (error,) = next(out for code, out in results if code == 1)["errors"]
    assert error["kind"] == "inventory-changed" and error["message"] == "the inventory changed since it was read"
    winner = next(port for (code, _), port in zip(results, (2001, 2002), strict=True) if code == 0)
    assert api.get_setting("demo", "server", path="port", flake=str(root)).value == winner


def test_api_call_envelope_for_a_write_and_a_refusal(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c")
    ok = api.call("set_setting", {"instance": "demo", "role": "server", "path": ["port"], "value": 443,
                                  "flake": str(root)})
    assert ok["status"] == "success" and ok["data"]["files"] == ["clan.toml"]
    before = files_of(root)
    bad = api.call("set_setting", {"instance": "demo", "role": "server", "path": "port", "value": "https",
                                   "expected_hash": ok["data"]["hash"], "flake": str(root)})
    assert bad["status"] == "error" and bad["errors"][0]["path"].endswith("settings.port")
    assert files_of(root) == before
