"""The POSIX-sh activation script of a generation (targets need no Python).

The script is a fixed library (`LIBRARY`, the packaged `activation.sh`, checked by shellcheck in
CI) followed by functions generated from the manifest.
It is convergent: running it again, after a failure, a SIGKILL or on another generation,
brings the host to that generation. What pyclan created is recorded on the host (state/),
and removal compares those records, not the previous manifest, so nothing half-made is lost.

"Old or new, never a mix": every managed path is a symlink into `static/` →
`current/tree`. New paths are linked before the switch (they resolve into the old tree, where
they do not exist — or, for a file that was on the host before, to a copy of it); then one
rename of `current` switches every file and secret at once; then paths no longer declared are
released. Packages, users and units are applied around that point, and a journal marks an
unfinished activation so the next update runs it again.

Packages, users, units, reloads and hooks are skipped when the digest of their inputs
(`Manifest.steps`, the generation's `steps.list`) equals the one the host last applied
(`state/steps`), so a one-file change runs only the file steps; the update's probe checks the
host for drift first, and when it found some the activation runs with `repair`: every step.

Last come the health checks (`check:NAME` steps): a failing check fails the activation like
any step, and the caller switches the host back. A failed activation leaves `failed` (step and
status) in its generation folder; a successful one removes it.

Output: each step prints `@@pyclan-step NAME`; a failure ends with `@@pyclan-failed NAME RC`,
so the controller can show the failing step's output. Secret values are never printed.
"""

from __future__ import annotations

import hashlib
import shlex
from importlib import resources

from pyclan.build.layout import HOST_ROOT, SECRETS
from pyclan.build.manifest import Manifest

_ROOT_LINE = "R=/var/lib/pyclan  # build/layout.py HOST_ROOT (checked when loaded)\n"


def packaged(name: str) -> str:
    """A packaged shell file of this folder (`drift.sh`, `activation.sh`)."""
    return resources.files("pyclan.build").joinpath(name).read_text(encoding="utf-8")


def _library() -> str:
    """`drift.sh` and `activation.sh`, with the host root of `layout.py`."""
    text = packaged("activation.sh")
    if _ROOT_LINE not in text:
        raise RuntimeError("activation.sh lost its `R=` line; build/activation.py replaces it")
    return packaged("drift.sh") + "\n" + text.replace(_ROOT_LINE, f"R={shlex.quote(HOST_ROOT)}\n", 1)


LIBRARY = _library()
#: the host-side drift check alone (`machines status`, the update's probe); needs R and LC_ALL=C set
DRIFT = packaged("drift.sh")

#: changes whenever the library changes, so a new pyclan re-activates every host once
ACTIVATOR = hashlib.sha256(LIBRARY.encode()).hexdigest()[:16]


def q(value: str) -> str:
    return shlex.quote(value)


def _activation_path(manifest: Manifest, path: str) -> str:
    """A shell word for `path` as it will be after the switch, valid before it."""
    if path.startswith(SECRETS + "/"):
        return '"$GEN_DIR"/secrets/' + q(path[len(SECRETS) + 1 :])
    if path in manifest.files:
        return '"$GEN_DIR"/tree' + q(path)
    return q(path)


def _function(name: str, body: list[str]) -> str:
    lines = [f"{name}() {{", *(f"    {line}" for line in body or [":"]), "}"]
    return "\n".join(lines)


def _groups(m: Manifest) -> list[str]:
    out: list[str] = []
    if m.groups:
        out.append("step groups")
    for g in m.groups.values():
        args = ["groupadd"] + (["-g", str(g.gid)] if g.gid is not None else []) + (["-r"] if g.system else [])
        out.append(
            f"if ! getent group {q(g.name)} >/dev/null; then record {q(g.name)} \"$STATE/groups\"; "
            f"{' '.join(q(a) for a in [*args, g.name])}; fi"
        )
        if g.gid is not None:
            out.append(
                f'[ "$(getent group {q(g.name)} | cut -d: -f3)" = {g.gid} ] || groupmod -g {g.gid} {q(g.name)}'
            )
    return out


def _users(m: Manifest) -> list[str]:
    out: list[str] = []
    if m.users:
        out.append("step users")
    for u in m.users.values():
        common: list[str] = ["-d", u.home] if u.set_home else []
        if u.shell:
            common += ["-s", u.shell]
        if u.description is not None:
            common += ["-c", u.description]
        if u.uid is not None:
            common += ["-u", str(u.uid)]
        add = ["useradd", *([] if u.set_home else ["-d", u.home]), *common, "-m" if u.create_home else "-M"]
        add += ["-g", u.group] if u.group else []
        if u.system:
            add.append("-r")
        if u.groups:
            add += ["-G", ",".join(u.groups)]
        mod = ["usermod", *common] + (["-g", u.group] if u.group else [])
        name = q(u.name)
        create = (f"add_own_user {name} {' '.join(q(a) for a in add[1:])}" if not u.group
                  else " ".join(q(a) for a in [*add, u.name]))
        out.append(f"if ! getent passwd {name} >/dev/null; then record {name} \"$STATE/users\"; {create}; fi")
        exact = " ".join(q(a) for a in [*mod, "-G", ",".join(u.groups), u.name])
        extra = [*mod[1:], *(["-a", "-G", ",".join(u.groups)] if u.groups else [])]
        # a user pyclan did not create (root, a package's user): only what is declared is changed
        additive = " ".join(q(a) for a in ["usermod", *extra, u.name]) if extra else ":"
        out.append(f'if has {name} "$STATE/users"; then {exact} >/dev/null; else {additive} >/dev/null; fi')
        keys = f"{u.home.rstrip('/')}/.ssh/authorized_keys"
        if keys in m.files:
            group = q(u.group or u.name)
            out.append(f"install -d -m 700 -o {name} -g {group} {q(u.home.rstrip('/') + '/.ssh')}")
    for g in m.groups.values():
        for member in g.members:
            out.append(f"gpasswd -a {q(member)} {q(g.name)} >/dev/null")
    return out


def _tree(m: Manifest) -> list[str]:
    dirs = sorted({p.rsplit("/", 1)[0][1:] for p in m.managed_paths()} - {""})
    out: list[str] = []
    if dirs:
        out.append('(cd "$T" && mkdir -p -- ' + " ".join(q(d) for d in dirs) + ")")
    for path, f in m.files.items():
        out.append(f"put {q(path[1:])} {f.sha256} {f.mode} {q(f.owner)} {q(f.group)}")
    for path, target in m.links.items():
        out.append(f"plink {q(path[1:])} {q(target)}")
    return out


def _secrets(m: Manifest) -> list[str]:
    return [
        f"secret {q(f'{s.generator}/{s.file}')} {q(s.owner)} {q(s.group)} {s.mode}" for s in m.secrets.values()
    ]


def _passwords(m: Manifest) -> list[str]:
    out = [
        f"set_password {q(u.name)} {_activation_path(m, u.password_file)}"
        for u in m.users.values()
        if u.password_file
    ]
    return ["step passwords", *out] if out else []


def _hooks(m: Manifest) -> list[str]:
    return [f"run_hook {q(h.name)} {h.sha256}" for h in m.hooks]


def _checks(m: Manifest) -> list[str]:
    return [f"check {q(c.name)} {c.timeout} {q(c.kind)} {q(c.target)}" for c in m.checks]


def render(manifest: Manifest) -> str:
    """The complete activation script of `manifest`'s generation."""
    header = [
        "#!/bin/sh",
        f"# pyclan activation of machine {manifest.machine}. Generated by pyclan; do not edit.",
        "# Runs as root on the host; needs only POSIX sh and Debian's base tools.",
        "set -eu",
    ]
    generated = [
        _function("gen_groups", _groups(manifest)),
        _function("gen_users", _users(manifest)),
        _function("gen_tree", _tree(manifest)),
        _function("gen_secrets", _secrets(manifest)),
        _function("gen_passwords", _passwords(manifest)),
        _function("gen_hooks", _hooks(manifest)),
        _function("gen_checks", _checks(manifest)),
    ]
    return "\n".join(header) + "\n" + LIBRARY.strip("\n") + "\n\n" + "\n\n".join(generated) + '\n\nmain "$@"\n'


def lists(manifest: Manifest) -> dict[str, bytes]:
    """The generation's line lists that the script compares with the host's records."""

    def lines(items: list[str]) -> bytes:
        return "".join(f"{i}\n" for i in items).encode()

    units = [f"{u.name} {u.stamp} {int(u.start)} {int(u.enabled)}" for _, u in sorted(manifest.units.items())]
    systemd = manifest.systemd_files()
    return {
        "paths.list": lines(manifest.managed_paths()),
        # for `machines status`: what each file must be (the path last: it may hold spaces)
        "files.list": lines([f"{f.sha256} {f.mode} {f.owner} {f.group} {path}" for path, f in manifest.files.items()]),
        "packages.list": lines(sorted(manifest.packages)),
        "users.list": lines(sorted(manifest.users)),
        "groups.list": lines(sorted(manifest.groups)),
        "units.list": lines(units),
        "reloads.list": lines([f"{r.unit} {r.stamp} {r.action}" for _, r in sorted(manifest.reloads.items())]),
        "objects.list": lines(manifest.object_ids()),
        "steps.list": lines([f"{step} {digest}" for step, digest in sorted(manifest.steps.items())]),
        "systemd.stamp": hashlib.sha256(lines(systemd)).hexdigest().encode() + b"\n",
    }
