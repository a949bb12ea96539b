"""Input URLs, content hashes and the lock file, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pyclan.errors import ClanError
from pyclan.inputs.lock import LockEntry, LockFile
from pyclan.inputs.treehash import tree_hash
from pyclan.inputs.urls import parse_git_url

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    ("url", "fetch", "ref", "rev", "sub"),
    [
        ("git+https://example.org/lib/foo?ref=main", "https://example.org/lib/foo", "main", None, ""),
        ("git+ssh://git@example.org/lib/foo.git?ref=v1.2", "ssh://git@example.org/lib/foo.git", "v1.2", None, ""),
        ("git+git://127.0.0.1:9418/libstd", "git://127.0.0.1:9418/libstd", None, None, ""),
        ("git+file:///srv/git/lib?rev=" + COMMIT, "file:///srv/git/lib", None, COMMIT, ""),
        ("git+file:///srv/lib?ref=release/2&dir=sub/dir", "file:///srv/lib", "release/2", None, "sub/dir"),
        ("github:owner/repo", "https://github.com/owner/repo", None, None, ""),
        ("github:owner/repo/v2", "https://github.com/owner/repo", "v2", None, ""),
        (f"github:owner/repo/{COMMIT}", "https://github.com/owner/repo", None, COMMIT, ""),
    ],
)
def test_git_url_forms(url: str, fetch: str, ref: str | None, rev: str | None, sub: str) -> None:
    source = parse_git_url(url, "inputs.x.url")
    assert (source.url, source.fetch_url, source.ref, source.rev, source.dir) == (url, fetch, ref, rev, sub)
    assert source.wanted == (rev or ref or "HEAD")


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://example.org/foo", "unsupported input URL"),
        ("file:///srv/lib", "unsupported input URL"),
        ("git+file://relative/path", "absolute path"),
        ("git+https:///nohost", "no host"),
        ("git+https://example.org/foo?branch=main", "unknown URL parameter 'branch'"),
        ("git+https://example.org/foo?rev=abc123", "not a full commit id"),
        ("git+https://example.org/foo?ref=..%2Fx", "invalid ref"),
        ("git+https://example.org/foo?dir=../x", "invalid dir"),
        ("github:owner", "needs OWNER/REPO"),
    ],
)
def test_git_url_errors_say_what_is_accepted(url: str, fragment: str) -> None:
    with pytest.raises(ClanError) as info:
        parse_git_url(url, "inputs.x.url")
    problem = info.value.problems[0]
    assert problem.kind == "input-error"
    assert problem.path == "inputs.x.url"
    assert fragment in problem.message
    assert problem.hint


def test_tree_hash_is_deterministic_and_content_sensitive(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    for root, order in ((a, ["x.py", "sub/y.py"]), (b, ["sub/y.py", "x.py"])):
        for rel in order:  # creation order must not matter
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(f"content of {rel}\n")
    assert tree_hash(a) == tree_hash(b)
    assert tree_hash(a).startswith("sha256-")

    # .git and __pycache__ are not source
    (a / ".git").mkdir()
    (a / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (a / "sub" / "__pycache__").mkdir()
    (a / "sub" / "__pycache__" / "y.cpython-311.pyc").write_bytes(b"\0bytecode")
    assert tree_hash(a) == tree_hash(b)

    # content, executable bit, names and symlinks all count
    before = tree_hash(a)
    (a / "x.py").write_text("content of x.py, changed\n")
    assert tree_hash(a) != before
    (a / "x.py").write_text("content of x.py\n")
    assert tree_hash(a) == before
    os.chmod(a / "x.py", 0o755)
    assert tree_hash(a) != before
    os.chmod(a / "x.py", 0o644)
    (a / "link").symlink_to("x.py")
    with_link = tree_hash(a)
    assert with_link != before
    (a / "link").unlink()
    (a / "link").symlink_to("sub/y.py")
    assert tree_hash(a) not in (before, with_link)
    (a / "link").unlink()
    (a / "x.py").rename(a / "z.py")
    assert tree_hash(a) != before

    # a missing folder hashes like an empty one
    (tmp_path / "empty").mkdir()
    assert tree_hash(tmp_path / "missing") == tree_hash(tmp_path / "empty")


def test_lock_file_round_trip_sorted_and_atomic(tmp_path: Path) -> None:
    tmp_path = tmp_path / "clan"
    tmp_path.mkdir()
    lock = LockFile.load(tmp_path)
    assert lock.entries == {}
    lock.entries["zeta"] = LockEntry("package", "libzeta", version="1.0")
    lock.entries["alpha"] = LockEntry("git", "git+file:///x?ref=main", rev=COMMIT, hash="sha256-AAA=")
    lock.entries["mid"] = LockEntry("path", "../lib", hash="sha256-BBB=")
    lock.save()
    text = (tmp_path / "clan.lock").read_text()
    data = json.loads(text)
    assert list(data["inputs"]) == ["alpha", "mid", "zeta"]
    assert data["inputs"]["alpha"] == {
        "type": "git",
        "url": "git+file:///x?ref=main",
        "rev": COMMIT,
        "hash": "sha256-AAA=",
    }
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert LockFile.load(tmp_path).entries == lock.entries
    # no temporary files are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clan.lock"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "cannot read the lock file"),
        ('{"inputs": []}', "must be a JSON object"),
        ('{"version": 7, "inputs": {}}', "version 7 is not supported"),
        ('{"inputs": {"a": {"type": "svn", "url": "x"}}}', "unknown lock entry type"),
        ('{"inputs": {"a": {"type": "git", "url": "x", "hash": "sha256-A="}}}', "needs 'rev'"),
    ],
)
def test_broken_lock_file_is_a_clear_error(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "clan.lock").write_text(content)
    with pytest.raises(ClanError) as info:
        LockFile.load(tmp_path)
    problem = info.value.problems[0]
    assert problem.file == "clan.lock"
    assert fragment in problem.message
    assert problem.hint
