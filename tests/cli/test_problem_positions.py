"""Every inventory problem says `file:line`, not only parse errors (the key's place in the text)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from pyclan import api
from pyclan.inventory.positions import json_positions, toml_positions

TOML = textwrap.dedent("""\
    [meta]
    name = "pos"

    [machines.web]
    tags = ["server"]
    colour = "blue"

    [instances.hello]
    module.name = "hello-world"
    roles.morning.machines.ghost = {}
""")


def _errors(flake: Path) -> list[dict[str, object]]:
    result = api.call("check_clan", {"flake": str(flake)})
    if result["status"] == "success":  # the inventory loaded: the report lists every problem
        assert result["data"]["ok"] is False
        return list(result["data"]["errors"])
    return list(result["errors"])


def test_unknown_field_in_toml_has_its_line(tmp_path: Path) -> None:
    (tmp_path / "clan.toml").write_text(TOML)
    (problem,) = [e for e in _errors(tmp_path) if e["kind"] == "inventory-unknown-field"]
    assert (problem["file"], problem["line"], problem["column"]) == ("clan.toml", 6, 1)


def test_resolve_problem_has_the_line_of_its_key(tmp_path: Path) -> None:
    (tmp_path / "clan.toml").write_text(TOML.replace('colour = "blue"\n', ""))
    (problem,) = _errors(tmp_path)
    assert problem["kind"] == "unknown-machine"
    assert (problem["file"], problem["line"]) == ("clan.toml", 9)


def test_json_inventory_problem_has_its_line(tmp_path: Path) -> None:
    inventory = {"meta": {"name": "pos"}, "machines": {"web": {"tags": "server"}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory, indent=2))
    (problem,) = _errors(tmp_path)
    assert problem["kind"] == "inventory-type" and problem["file"] == "inventory.json"
    assert problem["line"] == 7  # "tags": "server"


def test_toml_positions_follow_tables_dotted_keys_and_inline_tables() -> None:
    found = toml_positions(TOML + 'x = { a = 1, b = { c = "}" } }\nmulti = """\nnot = key\n"""\n')
    assert found["machines.web.colour"] == (6, 1)
    assert found["instances.hello.roles.morning.machines.ghost"] == (10, 1)
    assert found["instances.hello.x.b.c"][0] == 11
    assert "instances.hello.not" not in found


def test_json_positions_follow_nesting() -> None:
    found = json_positions('{"a": {"b": [1, {"c": 2}]},\n "d": 3}')
    assert found["a.b"] == (1, 8) and found["a.b.1.c"] == (1, 18) and found["d"] == (2, 2)


def test_cli_renders_file_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pyclan.cli.main import app

    (tmp_path / "clan.toml").write_text(TOML)
    result = CliRunner().invoke(app, ["check", "-C", str(tmp_path)])
    assert result.exit_code == 1
    assert "clan.toml:6:1: machines.web.colour" in result.stderr
