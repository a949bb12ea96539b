"""The host-side drift check (build/drift.sh) on a generation folder in a temporary root."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import subprocess
from pathlib import Path

from pyclan.build.activation import DRIFT

OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def generation(root: Path, files: dict[str, bytes]) -> Path:
    """A generation folder whose tree holds `files` (paths below `root`), managed paths linked to it."""
    g = root / "generations" / "1"
    (g / "tree").mkdir(parents=True)
    (root / "current").symlink_to("generations/1")
    (root / "static").symlink_to("current/tree")
    lines = []
    for path, data in files.items():
        t = g / "tree" / path.lstrip("/")
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_bytes(data)
        t.chmod(0o644)
        lines.append(f"{hashlib.sha256(data).hexdigest()} 0644 {OWNER} {GROUP} {path}\n")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).symlink_to(f"{root}/static{path}")
    (g / "files.list").write_text("".join(lines))
    (g / "paths.list").write_text("".join(f"{p}\n" for p in sorted(files)))
    return g


def drift(root: Path, g: Path) -> set[str]:
    work = root / "work"
    work.mkdir(exist_ok=True)
    script = DRIFT + f'\nR={root}\nexport LC_ALL=C\ndrift "{g}" "{work}"\n'
    proc = subprocess.run(["sh", "-eu"], input=script, text=True, capture_output=True, check=True)
    return set(proc.stdout.splitlines())


def test_each_kind_of_file_drift_is_found_and_nothing_else(tmp_path: Path) -> None:
    root, host = tmp_path / "pyclan", tmp_path / "host"
    names = ["same", "edited", "gone", "swapped", "mode", "with space", "back\\slash", "tree-gone"]
    paths = {n: f"{host}/etc/{n}" for n in names}
    g = generation(root, {p: f"{n}\n".encode() for n, p in paths.items()})
    assert drift(root, g) == set()
    with open(paths["edited"], "a") as fh:  # through the symlink: into the tree
        fh.write("by hand\n")
    with open(paths["back\\slash"], "a") as fh:
        fh.write("by hand\n")
    os.unlink(paths["gone"])
    os.unlink(paths["swapped"])
    Path(paths["swapped"]).write_text("other\n")
    os.chmod(paths["mode"], 0o600)
    (g / "tree" / paths["tree-gone"].lstrip("/")).unlink()
    assert drift(root, g) == {
        f"modified {paths['edited']}", f"modified {paths['back' + chr(92) + 'slash']}",
        f"removed {paths['gone']}", f"replaced {paths['swapped']}",
        f"mode 600 {OWNER} {GROUP} {paths['mode']}", f"removed {paths['tree-gone']}",
    }
