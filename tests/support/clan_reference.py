"""A real Clan clan's vars as test data: `../shared/reference/clan-sops-vars/` next to the repository.

CI clones the repository next to a copy of `shared/`; a checkout elsewhere points
`$PYCLAN_SHARED_DIR` at that folder. The data is read-only: tests copy what they change.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# What `sops -d` (3.11.0, with the reference's admin key) prints for each var of the reference.
SOPS_SAYS = {
    "vars/per-machine/admin1/dummy-generator/generated-password/secret": b"2550\n",
    "vars/per-machine/peer1/dummy-generator/generated-password/secret": b"30102\n",
    "vars/per-machine/peer1/new-service/a-secret/secret": b"a-secret",
}
PUBLIC = {
    "vars/per-machine/admin1/dummy-generator/host-id/value": b"18650\n",
    "vars/per-machine/peer1/dummy-generator/host-id/value": b"6745\n",
    "vars/per-machine/peer1/new-service/not-a-secret/value": b"not-a-secret",
}
ADMIN_PUBLIC_KEY = "age1qm0p4vf9jvcnn43s6l4prk8zn6cx0ep9gzvevxecv729xz540v8qa742eg"


def reference_dir() -> Path:
    shared = os.environ.get("PYCLAN_SHARED_DIR")
    base = Path(shared) if shared else REPO / ".." / "shared"
    path = (base / "reference" / "clan-sops-vars").resolve()
    assert (path / "admin-age-key.txt").is_file(), (
        f"the Clan reference clan is missing at {path}: clone the repository next to shared/ "
        "or set PYCLAN_SHARED_DIR"
    )
    return path


@functools.cache
def reference_admin_key() -> Path:
    """A private (0600) copy of the reference's admin key: pyclan refuses a key others can read,
    and shared/ is read-only for everyone."""
    folder = Path(tempfile.mkdtemp(prefix="pyclan-ref-key-"))
    copy = folder / "admin-age-key.txt"
    copy.write_bytes((reference_dir() / "admin-age-key.txt").read_bytes())
    copy.chmod(0o600)
    return copy


def copy_reference(target: Path) -> Path:
    """Copy the reference's vars/ and sops/ into `target` (made writable, like a git checkout)."""
    ref = reference_dir()
    for part in ("vars", "sops"):
        shutil.copytree(ref / part, target / part, symlinks=True)
    for path in [target / "vars", target / "sops", *(target / "vars").rglob("*"), *(target / "sops").rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return target


def tree_digest(root: Path) -> dict[str, bytes | str]:
    """Every file (content) and symlink (target) below root: to prove nothing changed (pyclan's own
    runtime folder `.pyclan/`, which holds the clan's lock file, is not part of the clan)."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel == ".pyclan" or rel.startswith(".pyclan/"):
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


# -- writing a clan in Clan's layout (from the reference's structure), for generators it lacks ----------


def write_clan_keys(clan_dir: Path, machines: list[str], admin: str = "admin") -> dict[str, str]:
    """sops/users/<admin>/key.json (the reference's admin) and a new age key pair per machine, as Clan keeps them."""
    from pyclan.vars import age, sops

    (clan_dir / "sops/users" / admin).mkdir(parents=True, exist_ok=True)
    (clan_dir / "sops/users" / admin / "key.json").write_text(
        json.dumps({"publickey": ADMIN_PUBLIC_KEY, "type": "age"}, indent=2) + "\n")
    pubs: dict[str, str] = {}
    for m in machines:
        ident = age.generate_identity()
        pubs[m] = age.public_key(ident)
        (clan_dir / "sops/machines" / m).mkdir(parents=True, exist_ok=True)
        (clan_dir / "sops/machines" / m / "key.json").write_text(
            json.dumps([{"publickey": pubs[m], "type": "age"}], indent=2) + "\n")
        secret = clan_dir / "sops/secrets" / f"{m}-age.key"
        (secret / "users").mkdir(parents=True, exist_ok=True)
        (secret / "secret").write_bytes(sops.encrypt_binary(age.secret_key(ident).encode(), [ADMIN_PUBLIC_KEY]))
        (secret / "users" / admin).symlink_to(f"../../../users/{admin}")
    return pubs


def write_clan_var(clan_dir: Path, rel_dir: str, file: str, value: bytes, *, secret: bool,
                   machines: dict[str, str] | None = None, admin: str = "admin") -> None:
    """One var as Clan's sops backend writes it: `<file>/value`, or `<file>/secret` plus recipient symlinks."""
    from pyclan.vars import sops

    folder = clan_dir / "vars" / rel_dir / file
    folder.mkdir(parents=True, exist_ok=True)
    if not secret:
        (folder / "value").write_bytes(value)
        return
    machines = machines or {}
    (folder / "secret").write_bytes(sops.encrypt_binary(value, [ADMIN_PUBLIC_KEY, *machines.values()]))
    up = "../" * (len(Path(rel_dir).parts) + 3)
    (folder / "users").mkdir(exist_ok=True)
    (folder / "users" / admin).symlink_to(f"{up}sops/users/{admin}")
    (folder / "machines").mkdir(exist_ok=True)
    for m in machines:
        (folder / "machines" / m).symlink_to(f"{up}sops/machines/{m}")
