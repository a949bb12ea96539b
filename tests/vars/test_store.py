"""The store's all-or-nothing folder writes, and recovery from a write cut short."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyclan.vars.layout import GenKey
from pyclan.vars.store import StoredSecret, VarsStore, recover, swap_in


def test_write_replaces_a_generator_folder_as_a_whole(tmp_path: Path) -> None:
    store = VarsStore(tmp_path)
    key = GenKey("g", "m")
    store.write(key, {"a": b"1", "b": StoredSecret(b"age-bytes", ("age1x", "age1y"))}, "h1", replace_all=True)
    assert store.public(key, "a") == b"1"
    assert store.secret(key, "b") == StoredSecret(b"age-bytes", ("age1x", "age1y"))
    assert store.validation_hash(key) == "h1"
    # a generator run that no longer produces "b" replaces the folder: b is gone
    store.write(key, {"a": b"2"}, "h2", replace_all=True)
    assert store.public(key, "a") == b"2" and store.secret(key, "b") is None
    # a partial update (vars set, re-encryption) keeps the other files and the hash
    store.write(key, {"c": b"3"}, None, replace_all=False)
    assert (store.public(key, "a"), store.public(key, "c"), store.validation_hash(key)) == (b"2", b"3", "h2")
    # a file switching from public to secret leaves no stale `value`
    store.write(key, {"a": StoredSecret(b"s", ("age1x",))}, None, replace_all=False)
    assert store.public(key, "a") is None and store.has(key, "a", secret=True)
    assert sorted(p.name for p in (tmp_path / "vars/per-machine/m").iterdir()) == ["g"]


def test_a_failing_write_leaves_the_old_folder(tmp_path: Path) -> None:
    store = VarsStore(tmp_path)
    key = GenKey("g")
    store.write(key, {"a": b"old"}, "h", replace_all=True)

    with pytest.raises(TypeError):
        store.write(key, {"a": b"new", "b": 42}, "h2", replace_all=True)  # type: ignore[dict-item]
    assert store.public(key, "a") == b"old" and store.validation_hash(key) == "h"
    assert sorted(p.name for p in (tmp_path / "vars/shared").iterdir()) == ["g"]


def test_swap_in_exchanges_atomically(tmp_path: Path) -> None:
    target, new = tmp_path / "g", tmp_path / ".g.tmp-0123456789ab"
    target.mkdir()
    (target / "f").write_text("old")
    new.mkdir()
    (new / "f").write_text("new")
    inode_new = new.stat().st_ino
    swap_in(new, target)
    assert (target / "f").read_text() == "new" and target.stat().st_ino == inode_new
    assert not new.exists()


def test_recover_after_a_kill_between_the_two_renames(tmp_path: Path) -> None:
    """Where renameat2 is missing, a swap is two renames; recovery finishes or undoes it."""
    parent = tmp_path / "vars/per-machine/m"
    parent.mkdir(parents=True)
    # killed after `target → .old`: the target is missing, the old folder must come back
    old = parent / ".g.old-0123456789ab"
    old.mkdir()
    (old / ".validation-hash").write_text("h\n")
    new = parent / ".g.tmp-0123456789ab"
    new.mkdir()
    # killed after both renames: a stale .old next to the new folder is dropped
    (parent / "h").mkdir()
    (parent / "h" / "x").write_text("new")
    (parent / ".h.old-aaaaaaaaaaaa").mkdir()
    recover(parent)
    assert sorted(os.listdir(parent)) == ["g", "h"]
    assert (parent / "g" / ".validation-hash").read_text() == "h\n"
    assert (parent / "h" / "x").read_text() == "new"
    # readers go through the same recovery
    assert VarsStore(tmp_path).validation_hash(GenKey("g", "m")) == "h"
