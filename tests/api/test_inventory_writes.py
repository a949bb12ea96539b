"""Inventory writes through the API: each verb, where it lands, layouts kept, refusals change nothing."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pyclan import api
from pyclan.errors import ClanError
from pyclan.inventory.load import load_inventory

from .writes_support import TOML, files_of, make_clan


@pytest.fixture
def clan(tmp_path: Path) -> Path:
    return make_clan(tmp_path / "clan")


def toml_of(root: Path) -> Any:
    return tomllib.loads((root / "clan.toml").read_text())


def refused(root: Path, fn: Any, *args: Any, **kwargs: Any) -> list[Any]:
    """Call a write that must be refused; assert the files stayed byte for byte; return the problems."""
    before = files_of(root)
    with pytest.raises(ClanError) as err:
        fn(*args, flake=str(root), **kwargs)
    assert files_of(root) == before
    assert not [p.name for p in root.iterdir() if ".tmp-" in p.name]  # no temporary file left behind
    return err.value.problems


def comments_kept(root: Path, removed: str = "") -> None:
    """Every comment of the hand-written file is still there (but those on a line that was removed)."""
    text = (root / "clan.toml").read_text()
    for line in TOML.splitlines():
        if "#" in line and not (removed and removed in line):
            assert line.split("#", 1)[1] in text, line


# -- instances -----------------------------------------------------------------------------------


def test_list_and_show_instances(clan: Path) -> None:
    listed = {i.name: i for i in api.list_instances(str(clan))}
    assert set(listed) == {"demo", "hello"}
    assert listed["hello"].module.name == "hello-world" and listed["hello"].module.input is None
    assert listed["hello"].roles["morning"].tags == ["server"]
    shown = api.show_instance("hello", flake=str(clan))
    assert shown.files == ["clan.toml"]
    assert set(shown.roles) == {"morning", "evening"}  # every role of the module, used or not
    morning = shown.roles["morning"]
    assert morning.members == ["db", "web"]
    assert morning.settings == {"greeting": "Good morning"}
    assert morning.schema["properties"]["greeting"]["type"] == "string"
    assert shown.roles["evening"].members == []


def test_create_instance_any_number_per_module(clan: Path) -> None:
    for name in ("hello-2", "hello-3"):
        result = api.create_instance(name, "hello-world", flake=str(clan))
        assert result.files == ["clan.toml"] and result.changed
    data = toml_of(clan)
    assert data["instances"]["hello-2"] == {"module": {"name": "hello-world"}}
    assert data["instances"]["hello-3"] == {"module": {"name": "hello-world"}}
    assert "[instances.hello-2]" in (clan / "clan.toml").read_text()
    comments_kept(clan)
    api.create_instance("demo-2", "demo", "self", flake=str(clan))
    assert toml_of(clan)["instances"]["demo-2"]["module"] == {"name": "demo", "input": "self"}
    load_inventory(clan)


def test_create_instance_refusals(clan: Path) -> None:
    (problem,) = refused(clan, api.create_instance, "hi", "helo-world")
    assert problem.kind == "unknown-module" and "hello-world" in (problem.hint or "")
    assert refused(clan, api.create_instance, "hello", "hello-world")[0].message == "instance 'hello' already exists"
    assert refused(clan, api.create_instance, "bad name", "hello-world")[0].kind == "inventory-type"


def test_delete_instance(clan: Path) -> None:
    api.delete_instance("demo", flake=str(clan))
    data = toml_of(clan)
    assert set(data["instances"]) == {"hello"}
    assert "# the port" not in (clan / "clan.toml").read_text()
    (problem,) = refused(clan, api.delete_instance, "helo")
    assert problem.kind == "unknown-instance" and problem.hint == "did you mean 'hello'?"


# -- members -------------------------------------------------------------------------------------


def test_add_and_remove_members(clan: Path) -> None:
    api.set_machine("laptop", tags=["mobile"], flake=str(clan))
    api.add_member("hello", "evening", machines=["laptop"], tags=["mobile"], flake=str(clan))
    role = toml_of(clan)["instances"]["hello"]["roles"]["evening"]
    assert role["machines"] == {"laptop": {}} and role["tags"] == ["mobile"]
    assert api.show_instance("hello", flake=str(clan)).roles["evening"].members == ["laptop"]
    # a tag list is extended as a list
    api.add_member("hello", "morning", tags=["backup"], flake=str(clan))
    assert toml_of(clan)["instances"]["hello"]["roles"]["morning"]["tags"] == ["server", "backup"]
    again = api.add_member("hello", "morning", tags=["backup"], flake=str(clan))
    assert not again.changed and again.files == []
    api.remove_member("hello", "morning", tags=["backup"], flake=str(clan))
    assert toml_of(clan)["instances"]["hello"]["roles"]["morning"]["tags"] == ["server"]
    api.remove_member("hello", "evening", machines=["laptop"], tags=["mobile"], flake=str(clan))
    assert "evening" not in toml_of(clan)["instances"]["hello"]["roles"]
    comments_kept(clan)


def test_member_refusals_name_the_path_and_hint(clan: Path) -> None:
    (problem,) = refused(clan, api.add_member, "hello", "evning", machines=["web"])
    assert problem.kind == "unknown-role" and problem.path == "instances.hello.roles.evning"
    assert "evening" in (problem.hint or "")
    (problem,) = refused(clan, api.add_member, "hello", "evening", machines=["wbe"])
    assert problem.kind == "unknown-machine" and problem.path == "instances.hello.roles.evening.machines.wbe"
    assert problem.hint == "did you mean 'web'?"
    (problem,) = refused(clan, api.add_member, "hello", "evening", tags=["severs"])
    assert problem.kind == "unknown-tag" and "server" in (problem.hint or "")
    (problem,) = refused(clan, api.remove_member, "hello", "morning", machines=["web"])
    assert "not among the machines" in problem.message
    assert refused(clan, api.add_member, "hellp", "morning", machines=["web"])[0].kind == "unknown-instance"


def test_a_member_whose_configuration_conflicts_is_refused(clan: Path) -> None:
    """db is a morning member (tag server): as an evening member too, both write /etc/hello-world/hello."""
    (problem,) = refused(clan, api.add_member, "hello", "evening", machines=["db"])
    assert problem.kind == "config-conflict" and "/etc/hello-world/hello" in problem.path


def test_member_without_a_required_setting_is_refused(clan: Path) -> None:
    (problem,) = refused(clan, api.add_member, "demo", "client", machines=["db"])
    assert problem.kind == "missing-setting"
    assert problem.path == "instances.demo.roles.client.machines.db.settings.server"
    # the machine's own block makes it a member with its setting at once
    api.set_setting("demo", "client", "server", "web", machine="db", flake=str(clan))
    assert api.show_instance("demo", flake=str(clan)).roles["client"].members == ["db"]


# -- settings ------------------------------------------------------------------------------------


def test_set_setting_edits_in_place_and_keeps_comments(clan: Path) -> None:
    api.set_setting("demo", "server", "port", 9000, flake=str(clan))
    text = (clan / "clan.toml").read_text()
    assert "port = 9000  # the port" in text
    api.set_setting("hello", "morning", "greeting", "Moin", flake=str(clan))
    assert 'roles.morning.settings.greeting = "Moin"' in (clan / "clan.toml").read_text()
    comments_kept(clan)
    value = api.get_setting("demo", "server", path="port", flake=str(clan))
    assert (value.defined, value.value, value.effective, value.file) == (True, 9000, 9000, "clan.toml")


def test_settings_are_validated_before_writing(clan: Path) -> None:
    api.add_member("demo", "server", machines=["web"], flake=str(clan))
    (problem,) = refused(clan, api.set_setting, "demo", "server", "port", 0)
    assert problem.kind == "settings-type" and problem.path == "instances.demo.roles.server.settings.port"
    assert problem.file == "clan.toml" and "between 1 and 65535" in problem.message
    (problem,) = refused(clan, api.set_setting, "demo", "server", "prot", 1)
    assert problem.kind == "unknown-setting" and problem.hint == "did you mean 'port'?"
    assert problem.path == "instances.demo.roles.server.settings.prot"
    (problem,) = refused(clan, api.set_setting, "demo", "server", "port", "x", machine="web")
    assert problem.kind == "settings-type" and problem.path == "instances.demo.roles.server.machines.web.settings.port"
    # a tag nobody in the role carries yet is still validated on its own
    refused(clan, api.set_setting, "demo", "server", "port", "x", tag="backup")


def test_machine_and_tag_blocks(clan: Path) -> None:
    api.add_member("demo", "server", machines=["web"], flake=str(clan))
    api.set_setting("demo", "server", "names", ["a", "b"], machine="web", flake=str(clan))
    api.set_setting("demo", "server", "tls.cert", "c", tag="server", flake=str(clan))
    role = toml_of(clan)["instances"]["demo"]["roles"]["server"]
    assert role["machines"]["web"]["settings"] == {"names": ["a", "b"]}
    assert role["tags"]["server"]["settings"] == {"tls": {"cert": "c"}}
    effective = api.get_setting("demo", "server", machine="web", flake=str(clan)).effective
    assert effective == {"port": 8080, "names": ["a", "b"], "tls": {"cert": "c"}}
    api.unset_setting("demo", "server", "names", machine="web", flake=str(clan))
    role = toml_of(clan)["instances"]["demo"]["roles"]["server"]
    assert role["machines"] == {"web": {}}  # still a member
    assert api.get_setting("demo", "server", machine="web", path="names", flake=str(clan)).defined is False


def test_tag_list_becomes_an_attrset_when_a_tag_gets_settings(clan: Path) -> None:
    api.set_setting("hello", "morning", "greeting", "Hi db", tag="backup", force=True, flake=str(clan))
    tags = toml_of(clan)["instances"]["hello"]["roles"]["morning"]["tags"]
    assert tags == {"server": {}, "backup": {"settings": {"greeting": {
        "_type": "override", "priority": 50, "content": "Hi db"}}}}
    assert api.get_setting("hello", "morning", machine="db", path="greeting", flake=str(clan)).effective == "Hi db"


def test_force_and_default_write_override_wrappers(clan: Path) -> None:
    api.add_member("demo", "server", machines=["web"], flake=str(clan))
    api.set_setting("demo", "server", "port", 1, machine="web", force=True, flake=str(clan))
    block = toml_of(clan)["instances"]["demo"]["roles"]["server"]["machines"]["web"]["settings"]
    assert block["port"] == {"_type": "override", "priority": 50, "content": 1}
    assert api.get_setting("demo", "server", machine="web", path="port", flake=str(clan)).effective == 1
    api.set_setting("demo", "server", "port", 2, machine="web", default=True, flake=str(clan))
    block = toml_of(clan)["instances"]["demo"]["roles"]["server"]["machines"]["web"]["settings"]
    assert block["port"] == {"_type": "override", "priority": 1000, "content": 2}
    assert api.get_setting("demo", "server", machine="web", path="port", flake=str(clan)).effective == 8080
    refused(clan, api.set_setting, "demo", "server", "port", 2, force=True, default=True)


def test_non_literal_wrappers_are_read_only(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c", TOML.replace(
        "port = 8080  # the port", 'port = {_type = "if", condition = true, content = 8080}  # the port'))
    (problem,) = refused(root, api.set_setting, "demo", "server", "port", 1)
    assert problem.kind == "read-only" and "mkIf" in problem.message
    role = api.show_instance("demo", flake=str(root)).roles["server"]
    assert "port" in role.readOnly
    assert role.schema["properties"]["port"]["readOnly"] is True
    assert "x-readonly-reason" in role.schema["properties"]["port"]
    api.add_member("demo", "server", machines=["web"], flake=str(root))
    api.set_setting("demo", "server", "names", {"_type": "merge", "contents": [["a"], ["b"]]}, machine="web",
                    flake=str(root))
    assert set(api.show_instance("demo", flake=str(root)).roles["server"].readOnly) == {"port", "machines.web.names"}
    (problem,) = refused(root, api.set_setting, "demo", "server", "names", ["c"], machine="web")
    assert problem.kind == "read-only" and "mkMerge" in problem.message


def test_null_cannot_go_to_clan_toml(clan: Path) -> None:
    (problem,) = refused(clan, api.set_setting, "demo", "server", "tls", {"a": None})
    assert "TOML has no null" in problem.message


# -- machines and meta -----------------------------------------------------------------------------


def test_set_machine_and_meta(clan: Path) -> None:
    api.set_machine("web", description="The web server", tags=["server", "edge"], target_host="root@web",
                    flake=str(clan))
    machine = toml_of(clan)["machines"]["web"]
    assert machine == {"tags": ["server", "edge"], "description": "The web server",
                       "deploy": {"targetHost": "root@web"}}
    assert 'tags = ["server", "edge"]  # keep this comment' in (clan / "clan.toml").read_text()
    api.set_machine("web", target_host="", tags=[], flake=str(clan))
    assert toml_of(clan)["machines"]["web"] == {"description": "The web server"}
    api.set_meta(description="Our fleet", domain="example.org", flake=str(clan))
    assert toml_of(clan)["meta"] == {"name": "fleet", "domain": "example.org", "description": "Our fleet"}
    comments_kept(clan, removed='tags = ["server"]  #')
    assert refused(clan, api.set_machine, "wbe", description="x")[0].hint == "did you mean 'web'?"
    assert refused(clan, api.set_machine, "web", target_host="-oProxyCommand=x")[0].kind == "inventory-type"
    assert refused(clan, api.set_meta, domain="Not A Domain")[0].path == "meta.domain"
    assert refused(clan, api.set_machine, "web", machine_class="windows")  # type: ignore[arg-type]


# -- where a write lands -------------------------------------------------------------------------


INVENTORY_JSON = {
    "machines": {"extra": {"tags": ["json"]}},
    "instances": {
        "hello": {"roles": {"evening": {"machines": {"extra": {}}}}},
        "jsonly": {"module": {"name": "hello-world"}, "roles": {"morning": {"machines": {"extra": {}}}}},
    },
}


def test_values_land_where_they_are_defined(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c", inventory_json=json.dumps(INVENTORY_JSON, indent=4))
    toml_before = (root / "clan.toml").read_text()
    # a role defined only in inventory.json: its new member and settings go there
    api.add_member("hello", "evening", machines=["laptop"], flake=str(root))
    api.set_setting("hello", "evening", "greeting", "Evening", flake=str(root))
    assert (root / "clan.toml").read_text() == toml_before
    data = json.loads((root / "inventory.json").read_text())
    assert data["instances"]["hello"]["roles"]["evening"] == {
        "machines": {"extra": {}, "laptop": {}}, "settings": {"greeting": "Evening"}}
    # key order and the file's own indentation are kept
    assert list(data) == ["machines", "instances"] and list(data["instances"]) == ["hello", "jsonly"]
    assert '\n    "machines"' in (root / "inventory.json").read_text()
    # an instance defined in inventory.json only
    api.set_setting("jsonly", "morning", "greeting", "x", flake=str(root))
    assert json.loads((root / "inventory.json").read_text())["instances"]["jsonly"]["roles"]["morning"][
        "settings"] == {"greeting": "x"}
    # a new instance goes to the tool file: clan.toml, since the clan has one
    assert api.create_instance("new", "hello-world", flake=str(root)).files == ["clan.toml"]
    # the machine in inventory.json is edited there
    assert api.set_machine("extra", description="d", flake=str(root)).files == ["inventory.json"]
    load_inventory(root)


def test_a_clan_without_clan_toml_writes_inventory_json(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c", toml="", inventory_json=json.dumps({"meta": {"name": "j"}, "machines": {"a": {}}}))
    assert api.create_instance("hello", "hello-world", flake=str(root)).files == ["inventory.json"]
    api.add_member("hello", "morning", machines=["a"], flake=str(root))
    assert not (root / "clan.toml").exists()
    assert json.loads((root / "inventory.json").read_text())["instances"] == {
        "hello": {"module": {"name": "hello-world"}, "roles": {"morning": {"machines": {"a": {}}}}}}


def test_a_list_defined_in_two_files_is_written_to_the_first(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c", inventory_json=json.dumps({"machines": {"web": {"tags": ["json-tag"]}}}))
    result = api.set_machine("web", tags=["a"], flake=str(root))
    assert result.files == ["clan.toml", "inventory.json"]
    assert load_inventory(root).inventory.machines["web"].tags == ["a"]
    assert json.loads((root / "inventory.json").read_text()) == {"machines": {"web": {}}}


def test_machine_folder_only_machine_gets_an_entry_in_the_tool_file(clan: Path) -> None:
    (clan / "machines" / "folder-only").mkdir(parents=True)
    api.set_machine("folder-only", description="from a folder", flake=str(clan))
    assert toml_of(clan)["machines"]["folder-only"] == {"description": "from a folder"}


# -- the inventory's state and stale writes ------------------------------------------------------


def test_stale_hash_is_refused(clan: Path) -> None:
    state = api.get_inventory_state(str(clan))
    assert state.files == ["clan.toml"] and len(state.hash) == 64
    first = api.set_setting("demo", "server", "port", 1000, expected_hash=state.hash, flake=str(clan))
    assert first.hash == api.get_inventory_state(str(clan)).hash != state.hash
    (problem,) = refused(clan, api.set_setting, "demo", "server", "port", 2000, expected_hash=state.hash)
    assert problem.kind == "inventory-changed" and problem.message == "the inventory changed since it was read"
    api.set_setting("demo", "server", "port", 2000, expected_hash=first.hash, flake=str(clan))


def test_a_symlinked_inventory_file_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.toml"
    outside.write_text(TOML)
    root = make_clan(tmp_path / "c", toml="")
    (root / "clan.toml").symlink_to(outside)
    with pytest.raises(ClanError) as err:
        api.set_meta(description="x", flake=str(root))
    assert "symlink" in err.value.problems[0].message
    assert outside.read_text() == TOML and (root / "clan.toml").is_symlink()


def test_every_write_is_in_the_api_registry_with_a_schema() -> None:
    described = {d["name"]: d for d in api.describe()}
    for name in ("list_instances", "show_instance", "create_instance", "delete_instance", "add_member",
                 "remove_member", "get_setting", "set_setting", "unset_setting", "set_machine", "set_meta",
                 "get_inventory_state"):
        assert name in described, name
        if name not in ("list_instances", "show_instance", "get_setting", "get_inventory_state"):
            assert "expected_hash" in described[name]["parameters"]["properties"], name


# -- clan.toml layouts -----------------------------------------------------------------------------

LAYOUTS = {
    "headers": """\
[meta]
name = "l"  # c-meta

[machines.web]  # c-web
tags = ["server"]

[machines.db]

[instances.hello]  # c-hello
module = { name = "hello-world" }  # c-module

[instances.hello.roles.morning]  # c-role
tags = ["server"]  # c-tags

[instances.hello.roles.morning.settings]
greeting = "Hi"  # c-greeting
""",
    "inline": """\
meta = { name = "l" }  # c-meta

[machines]
web = { tags = ["server"] }  # c-web
db = {}

[instances]
""" + 'hello = { module = { name = "hello-world" }, roles = { morning = { tags = ["server"], '
    + 'settings = { greeting = "Hi" } } } }  # c-hello\n',
    "dotted": """\
[meta]
name = "l"  # c-meta

[machines]
web.tags = ["server"]  # c-web
db = {}

[instances]
hello.module.name = "hello-world"  # c-hello
hello.roles.morning.tags = ["server"]  # c-tags
hello.roles.morning.settings.greeting = "Hi"  # c-greeting
""",
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_writes_keep_every_layout_and_comment(tmp_path: Path, layout: str) -> None:
    text = LAYOUTS[layout]
    root = make_clan(tmp_path / "c", text)
    flake = str(root)
    api.set_setting("hello", "morning", "greeting", "Moin", flake=flake)
    api.set_setting("hello", "morning", "greeting", "Yo", machine="web", force=True, flake=flake)
    api.add_member("hello", "morning", machines=["db"], flake=flake)
    api.set_machine("db", description="the db", target_host="root@db", flake=flake)
    api.create_instance("second", "hello-world", flake=flake)
    api.add_member("second", "evening", machines=["db", "web"], flake=flake)
    api.set_setting("second", "evening", "greeting", "Evening", tag="server", flake=flake)
    api.unset_setting("hello", "morning", "greeting", machine="web", flake=flake)
    new = (root / "clan.toml").read_text()
    for comment in (c.split("#", 1)[1] for c in text.splitlines() if "#" in c):
        assert comment in new, (comment, new)
    data = tomllib.loads(new)
    hello = data["instances"]["hello"]
    assert hello["roles"]["morning"]["settings"] == {"greeting": "Moin"}
    assert hello["roles"]["morning"]["machines"] == {"web": {}, "db": {}}
    assert data["machines"]["db"] == {"description": "the db", "deploy": {"targetHost": "root@db"}}
    assert data["instances"]["second"]["roles"]["evening"]["tags"] == {"server": {"settings": {"greeting": "Evening"}}}
    assert api.check_clan(flake).ok


def test_machines_create_and_delete_take_the_hash_too(clan: Path) -> None:
    stale = api.get_inventory_state(str(clan)).hash
    api.set_meta(description="changed", flake=str(clan))
    (problem,) = refused(clan, api.create_machine, "new", expected_hash=stale)
    assert problem.kind == "inventory-changed"
    fresh = api.get_inventory_state(str(clan)).hash
    api.create_machine("new", expected_hash=fresh, flake=str(clan))
    assert refused(clan, api.delete_machine, "new", expected_hash=fresh)[0].kind == "inventory-changed"
    api.delete_machine("new", expected_hash=api.get_inventory_state(str(clan)).hash, flake=str(clan))


def test_tags_written_as_an_attrset_grow_as_an_attrset(clan: Path) -> None:
    api.set_setting("demo", "server", "names", ["t"], tag="server", flake=str(clan))
    api.add_member("demo", "server", tags=["backup"], flake=str(clan))
    tags = toml_of(clan)["instances"]["demo"]["roles"]["server"]["tags"]
    assert tags == {"server": {"settings": {"names": ["t"]}}, "backup": {}}
    api.remove_member("demo", "server", tags=["server"], flake=str(clan))
    assert toml_of(clan)["instances"]["demo"]["roles"]["server"]["tags"] == {"backup": {}}


def test_an_instance_split_over_both_files_is_deleted_from_both(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c", inventory_json=json.dumps(INVENTORY_JSON))
    result = api.delete_instance("hello", flake=str(root))
    assert result.files == ["clan.toml", "inventory.json"]
    assert "hello" not in json.loads((root / "inventory.json").read_text())["instances"]
    assert "hello" not in toml_of(root)["instances"]
    # a member named in both files leaves both
    api.create_instance("hi", "hello-world", flake=str(root))
    api.add_member("hi", "morning", machines=["web"], flake=str(root))
    data = json.loads((root / "inventory.json").read_text())
    data["instances"]["hi"] = {"roles": {"morning": {"machines": {"web": {}}}}}
    (root / "inventory.json").write_text(json.dumps(data))
    assert api.remove_member("hi", "morning", machines=["web"], flake=str(root)).files == [
        "clan.toml", "inventory.json"]
    assert api.show_instance("hi", flake=str(root)).roles["morning"].machines == []


def test_meta_defined_in_inventory_json_is_edited_there(tmp_path: Path) -> None:
    root = make_clan(tmp_path / "c", TOML.replace('[meta]\nname = "fleet"  # the clan\'s name\ndomain = "fleet"\n', ""),
                     inventory_json=json.dumps({"meta": {"name": "fleet"}}))
    assert api.set_meta(description="d", flake=str(root)).files == ["inventory.json"]
    assert json.loads((root / "inventory.json").read_text())["meta"] == {"name": "fleet", "description": "d"}


def test_tag_lists(clan: Path) -> None:
    api.set_tag("edge", ["web", "laptop"], flake=str(clan))
    assert toml_of(clan)["tags"] == {"edge": ["web", "laptop"]}
    tags = {t.name: t for t in api.list_tags(str(clan))}
    assert tags["edge"].machines == ["laptop", "web"] and tags["edge"].listed == ["web", "laptop"]
    assert tags["server"].machines == ["db", "web"] and tags["server"].listed is None
    assert refused(clan, api.set_tag, "edge", ["wbe"])[0].hint == "did you mean 'web'?"
    api.set_tag("edge", [], flake=str(clan))
    assert "tags" not in toml_of(clan)


def test_a_write_of_two_files_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fails while the second file is renamed into place: the first is put back."""
    import errno
    import os

    root = make_clan(tmp_path / "c", inventory_json=json.dumps({"machines": {"web": {"tags": ["json-tag"]}}}))
    before = files_of(root)
    real_replace = os.replace

    def failing_replace(src: Any, dst: Any) -> None:
        if str(dst).endswith("inventory.json") and ".tmp-" in str(src):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ClanError) as err:
        api.set_machine("web", tags=["a"], flake=str(root))  # edits clan.toml and inventory.json
    assert "no space left" in err.value.problems[0].message
    monkeypatch.setattr(os, "replace", real_replace)
    assert files_of(root) == before
    assert not [p.name for p in root.iterdir() if ".tmp-" in p.name]
