"""Every CLI verb is one registered API function (issue 9): the CLI is a thin face over the registry.

A new verb must be added to VERBS with the function it calls; a verb that is not an API function
(an interactive shell, the `api` face itself) says why in FACE_ONLY.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from typing import Any

import typer

from pyclan import api
from pyclan.cli.main import app

VERBS: dict[str, str] = {
    "backups create": "create_backup",
    "backups list": "list_backups",
    "backups restore": "restore_backup",
    "check": "check_clan",
    "hosts down": "hosts_down",
    "hosts status": "hosts_status",
    "hosts up": "hosts_up",
    "init": "init_clan",
    "instances add-member": "add_member",
    "instances create": "create_instance",
    "instances delete": "delete_instance",
    "instances list": "list_instances",
    "instances remove-member": "remove_member",
    "instances show": "show_instance",
    "inventory state": "get_inventory_state",
    "inputs list": "list_inputs",
    "inputs update": "update_inputs",
    "inventory resolve": "resolve_inventory",
    "inventory schema": "inventory_schema",
    "machines build": "build_machine",
    "machines config": "get_machine_config",
    "machines create": "create_machine",
    "machines delete": "delete_machine",
    "machines generations": "list_generations",
    "machines install": "install_machine",
    "machines list": "list_machines",
    "machines rollback": "rollback_machine",
    "machines set": "set_machine",
    "machines status": "machines_status",
    "machines update": "update_machines",
    "meta set": "set_meta",
    "meta show": "get_clan_details",
    "network list": "list_networks",
    "network overview": "network_overview",
    "network ping": "ping_machines",
    "services list": "list_service_modules",
    "services show": "get_service_module",
    "settings get": "get_setting",
    "settings set": "set_setting",
    "settings unset": "unset_setting",
    "show": "get_clan_details",
    "tags list": "list_tags",
    "tags set": "set_tag",
    "vars check": "check_vars",
    "vars generate": "run_generators",
    "vars get": "get_var",
    "vars import": "import_clan_vars",
    "vars keygen": "keygen",
    "vars list": "list_vars",
    "vars set": "set_var",
}

FACE_ONLY: dict[str, str] = {
    "api list": "the API's own listing",
    "api call": "calls any API function by name",
    "serve": "serves the whole API over HTTP (and the web UI)",
    "ssh": "an interactive shell on the machine, not data",
}


def _leaves(cmd: Any, path: list[str], ctx: Any) -> Iterator[tuple[str, Any]]:
    if hasattr(cmd, "list_commands"):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _leaves(sub, [*path, name], ctx)
    else:
        yield " ".join(path), cmd


def cli_verbs() -> dict[str, Any]:
    root = typer.main.get_command(app)
    ctx = type(root).context_class(root)
    return dict(_leaves(root, [], ctx))


def test_every_cli_verb_is_an_api_function_or_says_why_not() -> None:
    verbs = cli_verbs()
    unlisted = sorted(set(verbs) - set(VERBS) - set(FACE_ONLY))
    assert not unlisted, f"CLI verbs without an API function in VERBS: {unlisted}"
    gone = sorted((set(VERBS) | set(FACE_ONLY)) - set(verbs))
    assert not gone, f"listed verbs the CLI no longer has: {gone}"


def test_each_verb_calls_its_function() -> None:
    """The verb's module names the function it calls (through `api.<name>` or the registry)."""
    verbs = cli_verbs()
    for verb, name in VERBS.items():
        source = inspect.getsource(inspect.getmodule(verbs[verb].callback))  # type: ignore[arg-type]
        assert name in source, f"`pyclan {verb}` does not call {name}"


def test_every_function_has_documented_parameter_and_result_schemas() -> None:
    described = {d["name"]: d for d in api.describe()}
    for name in VERBS.values():
        assert name in described, f"{name} is not registered"
        entry = described[name]
        assert entry["doc"].strip(), f"{name} has no doc"
        assert entry["parameters"]["type"] == "object"
        assert entry["result"], f"{name} has no result schema"
        text = json.dumps(entry)
        assert "<class" not in text, f"{name}'s schema names a Python class: {text[:200]}"
