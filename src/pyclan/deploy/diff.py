"""What an update would change on a host: a comparison of two manifests, for `--dry-run`.

File contents are compared by hash and shown as unified diffs; secrets only ever as
"changed", never with content. Units are restarted when their stamp changes (see manifest).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from pyclan.build.manifest import Manifest
from pyclan.deploy.changes import Changes, FileChange

MAX_DIFF_LINES = 200


def text_diff(path: str, old: bytes | None, new: bytes | None) -> str | None:
    try:
        a = (old or b"").decode().splitlines(keepends=True)
        b = (new or b"").decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return "(binary content differs)"
    lines = list(difflib.unified_diff(a, b, f"a{path}", f"b{path}"))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more lines\n"]
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n") or None


def needed_old_objects(old: Manifest | None, new: Manifest) -> list[str]:
    """Objects of the host's generation needed to show the diffs of changed files."""
    if old is None:
        return []
    return sorted(
        {old.files[p].sha256 for p in old.files.keys() & new.files.keys() if old.files[p].sha256 != new.files[p].sha256}
    )


def compare(
    old: Manifest | None, new: Manifest, old_objects: Mapping[str, bytes], new_objects: Mapping[str, bytes]
) -> Changes:
    o = old or Manifest(machine=new.machine)
    ch = Changes()
    for path in sorted(o.files.keys() | new.files.keys()):
        a, b = o.files.get(path), new.files.get(path)
        if a is None and b is not None:
            ch.files.append(FileChange(path, "added", text_diff(path, None, new_objects.get(b.sha256))))
        elif b is None:
            ch.files.append(FileChange(path, "removed"))
        elif a is not None and a.sha256 != b.sha256:
            old_data = old_objects.get(a.sha256)
            diff = text_diff(path, old_data, new_objects.get(b.sha256)) if old_data is not None else None
            ch.files.append(FileChange(path, "changed", diff))
        elif a is not None and a != b:
            meta = f"{a.owner}:{a.group} {a.mode} -> {b.owner}:{b.group} {b.mode}"
            ch.files.append(FileChange(path, "metadata", meta))
    for path in sorted(o.links.keys() ^ new.links.keys()):
        ch.files.append(FileChange(path, "added" if path in new.links else "removed"))
    for path in sorted(o.secrets.keys() | new.secrets.keys()):
        sa, sb = o.secrets.get(path), new.secrets.get(path)
        if sa is None:
            ch.files.append(FileChange(path, "added", secret=True))
        elif sb is None:
            ch.files.append(FileChange(path, "removed", secret=True))
        elif sa != sb:
            ch.files.append(FileChange(path, "changed", secret=True))
    ch.packages_added = sorted(set(new.packages) - set(o.packages))
    ch.packages_removed = sorted(set(o.packages) - set(new.packages))
    ch.users_added = sorted(new.users.keys() - o.users.keys())
    ch.users_removed = sorted(o.users.keys() - new.users.keys())
    ch.users_changed = sorted(u for u in new.users.keys() & o.users.keys() if new.users[u] != o.users[u])
    ch.groups_added = sorted(new.groups.keys() - o.groups.keys())
    ch.groups_removed = sorted(o.groups.keys() - new.groups.keys())
    for name, unit in sorted(new.units.items()):
        before = o.units.get(name)
        if not unit.start:
            continue
        if before is None:
            ch.units_started.append(name)
        elif before.stamp != unit.stamp:
            ch.units_restarted.append(name)
    ch.units_stopped = sorted(o.units.keys() - new.units.keys())
    # hooks run when their inputs changed (see Manifest.step_digests); a manifest without digests: always
    if not o.steps or o.steps.get("hooks") != new.steps.get("hooks"):
        ch.hooks = [h.name for h in new.hooks]
    return ch
