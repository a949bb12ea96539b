"""pyclan.safepath: nothing below the clan is read, written or removed through a symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyclan import safepath
from pyclan.errors import ClanError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "clan/vars/a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret").write_text("s")
    return tmp_path / "clan"


def test_reads_regular_files_and_reports_missing_ones(root: Path) -> None:
    (root / "vars/a/value").write_bytes(b"v")
    assert safepath.read_bytes(root, root / "vars/a/value") == b"v"
    assert safepath.read_bytes(root, root / "vars/a/none") is None
    assert safepath.read_bytes(root, root / "vars/nothing/here/value") is None


@pytest.mark.parametrize("where", ["vars", "vars/a", "vars/a/value"])
def test_item2_a_symlink_anywhere_on_the_way_is_refused(root: Path, where: str) -> None:
    target = root / where
    if target.is_dir():
        target.rename(root.parent / "moved")
    target.symlink_to(root.parent / "outside")
    with pytest.raises(ClanError, match="is a symlink") as err:
        safepath.read_bytes(root, root / "vars/a/value")
    assert err.value.problems[0].path == where
    with pytest.raises(ClanError, match="is a symlink"):
        safepath.write_atomic(root, root / "vars/a/value/x", b"x")
    with pytest.raises(ClanError, match="is a symlink"):
        safepath.remove_tree(root, root / where)
    assert (root.parent / "outside/secret").read_text() == "s"


def test_folders_fifos_large_files_and_paths_outside_are_refused(root: Path) -> None:
    (root / "vars/a/dir").mkdir()
    with pytest.raises(ClanError, match="is a folder"):
        safepath.read_bytes(root, root / "vars/a/dir")
    os.mkfifo(root / "vars/a/fifo")
    with pytest.raises(ClanError, match="not a regular file"):
        safepath.read_bytes(root, root / "vars/a/fifo")
    (root / "vars/a/big").write_bytes(b"x" * 11)
    with pytest.raises(ClanError, match="larger than 10 bytes"):
        safepath.read_bytes(root, root / "vars/a/big", limit=10)
    with pytest.raises(ClanError, match="outside the clan"):
        safepath.read_bytes(root, root.parent / "outside/secret")


def test_item11_folders_get_their_mode_whatever_the_umask(root: Path) -> None:
    old = os.umask(0o777)
    try:
        safepath.make_dirs(root, root / "keys/machines", 0o700)
    finally:
        os.umask(old)
    for folder in (root / "keys", root / "keys/machines"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
