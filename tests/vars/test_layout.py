"""The layout of `vars/` and `keys/` on disk is Clan's (R12.2, R12.3) and spelled in one module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pyclan.config.generators import Generator, VarFile
from pyclan.vars import layout
from pyclan.vars.layout import GenKey
from pyclan.vars.view import public_value_path

SRC = Path(__file__).resolve().parents[2] / "src" / "pyclan"
LAYOUT_WORDS = re.compile(r"(^|/)per-machine(/|$)|^vars/|keys/(machines|admins)|^\.machine-key|secret\.age")


def test_paths_are_clans_layout(tmp_path: Path) -> None:
    assert layout.value_path(tmp_path, GenKey("ca"), "cert") == tmp_path / "vars/shared/ca/cert/value"
    wg_key = tmp_path / "vars/per-machine/web/wg/key/secret.age"
    assert layout.secret_path(tmp_path, GenKey("wg", "web"), "key") == wg_key
    assert layout.machine_key_path(tmp_path, "web") == tmp_path / "vars/per-machine/web/.machine-key/key.age"
    assert layout.machine_pub_path(tmp_path, "web") == tmp_path / "keys/machines/web.pub"
    assert layout.admins_dir(tmp_path) / "alice.pub" == tmp_path / layout.admin_pub_rel("alice")
    assert layout.machine_owned("web") == ("vars/per-machine/web", "keys/machines/web.pub")


def test_evaluation_reads_public_values_where_the_store_keeps_them(tmp_path: Path) -> None:
    files = {"f": VarFile(secret=False)}
    shared, own = Generator(name="g", share=True, files=files), Generator(name="g", files=files)
    assert public_value_path(tmp_path, shared, "f", "web") == layout.value_path(tmp_path, GenKey("g"), "f")
    assert public_value_path(tmp_path, own, "f", "web") == layout.value_path(tmp_path, GenKey("g", "web"), "f")


def _strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a module, docstrings left out (prose may name the layout)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_no_module_but_vars_layout_spells_the_vars_layout() -> None:
    spelled = [
        f"{path.relative_to(SRC)}:{line}: {text[:60]!r}"
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "vars" / "layout.py"
        for line, text in _strings(path)
        if LAYOUT_WORDS.search(text)
    ]
    assert spelled == []
