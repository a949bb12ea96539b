"""Writing the inventory: comments survive, a refused change writes nothing, deletes leave no dangling refs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyclan import api
from pyclan.errors import ClanError
from pyclan.inventory.load import load_inventory

TOML = """\
# my fleet
[meta]
name = "w"  # the clan's name

[machines.web]
tags = ["server"]  # keep this comment

[instances.hello]
module.name = "hello-world"
roles.morning.machines.web = {}
"""


def _clan(tmp_path: Path, toml: str = TOML) -> Path:
    (tmp_path / "clan.toml").write_text(toml)
    return tmp_path


def test_create_machine_keeps_comments_and_loads(tmp_path: Path) -> None:
    clan = _clan(tmp_path)
    result = api.create_machine("db", ["server", "backup"], "root@db.example.org", "the database", flake=str(clan))
    assert (result.machine, result.file) == ("db", "clan.toml")
    text = (clan / "clan.toml").read_text()
    lines = text.splitlines()
    # everything the user wrote is still there, in order, comments included; the new table sits with the machines
    original = [line for line in TOML.splitlines() if line]
    assert [line for line in lines if line in original] == original
    assert lines.index("[machines.db]") < lines.index("[instances.hello]")
    assert 'deploy = {targetHost = "root@db.example.org"}' in lines
    machine = load_inventory(clan).inventory.machines["db"]
    assert machine.tags == ["server", "backup"]
    assert machine.deploy.targetHost == "root@db.example.org"
    assert machine.description == "the database"


def test_create_refuses_existing_and_invalid_names_without_writing(tmp_path: Path) -> None:
    clan = _clan(tmp_path)
    for name, kind in (("web", "usage-error"), ("Not_Valid", "inventory-type")):
        with pytest.raises(ClanError) as err:
            api.create_machine(name, flake=str(clan))
        assert err.value.problems[0].kind == kind
    assert (clan / "clan.toml").read_text() == TOML


def test_create_in_inventory_json_when_there_is_no_toml(tmp_path: Path) -> None:
    (tmp_path / "inventory.json").write_text(json.dumps({"meta": {"name": "j"}}))
    assert api.create_machine("a", ["x"], flake=str(tmp_path)).file == "inventory.json"
    assert json.loads((tmp_path / "inventory.json").read_text())["machines"] == {"a": {"tags": ["x"]}}


def test_delete_refused_while_a_role_names_the_machine(tmp_path: Path) -> None:
    clan = _clan(tmp_path)
    with pytest.raises(ClanError) as err:
        api.delete_machine("web", flake=str(clan))
    assert "instances.hello.roles.morning.machines.web" in err.value.problems[0].message
    assert (clan / "clan.toml").read_text() == TOML


def test_delete_removes_machine_vars_and_key(tmp_path: Path) -> None:
    clan = _clan(tmp_path)
    api.create_machine("old", flake=str(clan))
    (clan / "vars/per-machine/old/gen/file").mkdir(parents=True)
    (clan / "vars/per-machine/old/gen/file/value").write_text("x")
    (clan / "keys/machines").mkdir(parents=True)
    (clan / "keys/machines/old.pub").write_text("age1…")
    removed = api.delete_machine("old", flake=str(clan)).removed
    assert removed == ["clan.toml: machines.old", "vars/per-machine/old", "keys/machines/old.pub"]
    assert "old" not in load_inventory(clan).inventory.machines
    assert (clan / "clan.toml").read_text() == TOML
