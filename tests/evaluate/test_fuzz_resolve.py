"""No inventory, however broken, produces anything but a clean result or a ClanError."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyclan.check import run_check
from pyclan.clan import Clan
from pyclan.errors import ClanError, Problem
from pyclan.evaluate.evaluator import Evaluator
from pyclan.evaluate.resolve import resolve
from pyclan.inventory.load import load_inventory_data
from pyclan.inventory.schema import inventory_json_schema
from pyclan.services.registry import ServiceRegistry

VALID: dict[str, Any] = {
    "meta": {"name": "fuzz", "domain": "fuzz"},
    "machines": {
        "alpha": {"tags": ["laptop"], "deploy": {"targetHost": "root@alpha"}},
        "beta": {"tags": ["server"], "machineClass": "nixos"},
    },
    "tags": {"extra": ["alpha"]},
    "instances": {
        "hello": {
            "module": {"name": "hello-world"},
            "roles": {
                "morning": {"tags": ["laptop"], "settings": {"greeting": "hi"}},
                "evening": {"machines": {"beta": {"settings": {}}}},
            },
        },
        "pkgs": {"module": {"name": "packages"}, "roles": {"default": {"tags": {"all": {"settings": {}}}}}},
        "vpn": {
            "module": {"name": "zerotier"},
            "roles": {
                "peer": {"machines": {"alpha": {}}, "settings": {"ipRanges": ["all"]}},
                "controller": {"machines": {"beta": {"settings": {"dynamicIp": {"enable": True}}}}},
            },
        },
    },
}

json_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
interesting_keys = st.sampled_from(
    [
        "meta",
        "machines",
        "instances",
        "tags",
        "roles",
        "settings",
        "module",
        "name",
        "input",
        "services",
        "_type",
        "priority",
        "content",
        "greeting",
        "ipRanges",
        "dynamicIp",
        "enable",
        "alpha",
        "beta",
        "peer",
        "imports",
        "deploy",
        "machineClass",
        "packages",
    ]
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _set(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return root


def _run(sources: list[tuple[str, Any]]) -> None:
    registry = ServiceRegistry.for_clan(None)
    try:
        loaded = load_inventory_data(sources, clan_dir=Path("/nonexistent-fuzz-clan"))
    except ClanError as err:
        assert err.problems
        assert all(isinstance(p, Problem) and p.message for p in err.problems)
        return
    # `pyclan check` never raises: every problem is in its report
    report = run_check(Clan(dir=loaded.clan_dir, loaded=loaded))
    assert all(isinstance(p, Problem) and p.message for p in report.problems)
    try:
        resolved = resolve(loaded, registry)
        json.dumps(resolved.to_json())
        Evaluator(resolved).configs()
    except ClanError as err:
        assert err.problems
        assert all(isinstance(p, Problem) and p.message for p in err.problems)
    else:  # what evaluates is clean for check too, but for constraints and the build (check goes further)
        beyond = [p for p in report.problems if p.kind != "deploy-error" and "Inventory checks" not in p.message]
        assert beyond == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_value)
def test_random_values_give_clean_errors(value: Any) -> None:
    _run([("inventory.json", value)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_inventories_give_clean_errors(data: st.DataObject) -> None:
    inventory = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(inventory)
        path = data.draw(st.sampled_from(paths))
        choice = data.draw(st.integers(0, 2))
        if choice == 0:
            inventory = _set(inventory, path, data.draw(json_value))
        elif choice == 1 and isinstance(_get(inventory, path), dict):
            _get(inventory, path)[data.draw(interesting_keys)] = data.draw(json_value)
        elif path:
            parent = _get(inventory, path[:-1])
            if isinstance(parent, dict):
                del parent[path[-1]]
    second = data.draw(st.none() | st.just({"instances": {"hello": {"roles": {"morning": {"settings": {}}}}}}))
    sources: list[tuple[str, Any]] = [("clan.toml", inventory)]
    if second is not None:
        sources.append(("inventory.json", second))
    _run(sources)


SCHEMA = jsonschema.Draft202012Validator(inventory_json_schema())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_schema_accepts_every_mutated_inventory_that_loads(data: st.DataObject) -> None:
    """`inventory schema` is no stricter than loading (issue 8)."""
    inventory = copy.deepcopy(VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(inventory)))
        if data.draw(st.booleans()):
            inventory = _set(inventory, path, data.draw(json_value))
        elif isinstance(_get(inventory, path), dict):
            _get(inventory, path)[data.draw(interesting_keys)] = data.draw(json_value)
    try:
        load_inventory_data([("inventory.json", copy.deepcopy(inventory))])
    except ClanError:
        return
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in SCHEMA.iter_errors(inventory)]
    assert errors == [], errors


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        root = root[key]
    return root


def test_valid_fuzz_seed_resolves() -> None:
    registry = ServiceRegistry.for_clan(None)
    resolved = resolve(load_inventory_data([("clan.toml", copy.deepcopy(VALID))]), registry)
    assert resolved.to_json()["members"]["hello"] == {"evening": ["beta"], "morning": ["alpha"]}
