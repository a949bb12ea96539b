"""`pyclan inventory schema` accepts every inventory that loading accepts (issue 8).

Validated with the `jsonschema` package: the quickstart, and every inventory written in the test
suite (TOML strings and dicts with a `meta` table, found in the test sources).
"""

from __future__ import annotations

import ast
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pyclan.errors import ClanError
from pyclan.inventory.load import load_inventory_data
from pyclan.inventory.schema import inventory_json_schema

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(inventory_json_schema())


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(inventory_json_schema())


def test_quickstart_validates() -> None:
    data = tomllib.loads((ROOT / "examples" / "quickstart" / "clan.toml").read_text())
    load_inventory_data([("clan.toml", data)])  # check accepts it
    VALIDATOR.validate(data)


def test_list_form_role_tags_validate() -> None:
    data = {
        "meta": {"name": "t"},
        "machines": {"Jon": {"tags": ["laptop"]}},
        "instances": {"x": {"roles": {"peer": {"tags": ["laptop"], "settings": {"a": 1}}}}},
    }
    load_inventory_data([("inventory.json", data)])
    VALIDATOR.validate(data)


def test_schema_rejects_what_loading_rejects() -> None:
    for bad in (
        {"meta": {"name": "t"}, "machines": {"-bad-": {}}},
        {"meta": {"name": "t"}, "instances": {"x": {"roles": {"r": {"tags": [1]}}}}},
        {"meta": {"name": "t"}, "machines": {"a": {"machineClass": "bsd"}}},
        {"meta": {"name": "t"}, "instances": {"x": {"roles": {"r": {"settings": [1]}}}}},
    ):
        with pytest.raises(ClanError):
            load_inventory_data([("inventory.json", bad)])
        assert not VALIDATOR.is_valid(bad), bad


# -- every inventory of the test suite -----------------------------------------------------------


class _Strings(ast.NodeVisitor):
    """String expressions of a module: literals, f-string-free concatenations, module constants."""

    def __init__(self, tree: ast.Module) -> None:
        self.constants: dict[str, str] = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                value = self.evaluate(node.value)
                if value is not None:
                    self.constants[node.targets[0].id] = value

    def evaluate(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.constants.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.evaluate(node.left), self.evaluate(node.right)
            return None if left is None or right is None else left + right
        return None


def _test_inventories() -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text())
        strings = _Strings(tree)
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            text = strings.evaluate(node) if isinstance(node, (ast.Constant, ast.BinOp, ast.Name)) else None
            if text is not None and "[meta]" in text:
                try:
                    data = tomllib.loads(textwrap.dedent(text))
                except tomllib.TOMLDecodeError:
                    continue
                found.append((where, data))
            elif isinstance(node, ast.Dict):
                try:
                    value = ast.literal_eval(node)
                except (ValueError, SyntaxError, TypeError):
                    continue
                if isinstance(value, dict) and isinstance(value.get("meta"), dict):
                    found.append((where, value))
    return found


def _loads(data: Any) -> bool:
    try:
        load_inventory_data([("clan.toml", data)])
    except ClanError:
        return False
    return True


# the ones loading accepts (tests also write broken inventories on purpose)
TEST_INVENTORIES = [(where, data) for where, data in _test_inventories() if _loads(data)]


def test_many_test_inventories_were_found() -> None:
    assert len(TEST_INVENTORIES) >= 100, [w for w, _ in TEST_INVENTORIES]


@pytest.mark.parametrize(("where", "data"), TEST_INVENTORIES, ids=[w for w, _ in TEST_INVENTORIES])
def test_every_test_inventory_that_loads_validates(where: str, data: Any) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(data)]
    assert errors == [], f"{where}: {errors}"
