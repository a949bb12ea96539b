"""The shared Debian root filesystem every local host boots from (read-only lower layer).

Built once with debootstrap and cached: the build goes to a temporary directory that is
renamed into place only when complete, so a crashed build is never booted. debootstrap
runs in a private mount namespace, so the /proc and /sys it mounts vanish with it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from pyclan.hosts.config import SUITE, HostsConfig
from pyclan.hosts.system import (
    alive,
    deploy_error,
    locked,
    port_open,
    remove_tree,
    require_root,
    require_tools,
)

PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "iputils-ping",
    "sudo",
    "ca-certificates",
    "passwd",
    "procps",
)
SOURCES = Path("/etc/apt")
_DEBIAN_URI = re.compile(r"^https?://\S+/debian/?$")


def rootfs_ready(rootfs: Path) -> bool:
    """A finished build: only a completed build is renamed to this path."""
    return (rootfs / "usr/lib/systemd/systemd").exists()


def detect_mirror(apt_dir: Path = SOURCES) -> str:
    """The Debian mirror this machine's apt uses (first http(s) URI of a `…/debian` archive)."""
    candidates: list[str] = []
    for f in sorted(apt_dir.glob("sources.list.d/*.sources")):
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                candidates += line.split()[1:]
    for f in [apt_dir / "sources.list", *sorted(apt_dir.glob("sources.list.d/*.list"))]:
        if not f.exists():
            continue
        for line in f.read_text(errors="replace").splitlines():
            words = line.split()
            if words and words[0] == "deb":
                candidates += [w for w in words[1:] if w.startswith(("http://", "https://"))][:1]
    for uri in candidates:
        if _DEBIAN_URI.match(uri):
            return uri.rstrip("/")
    raise deploy_error(
        "hosts.rootfs",
        f"no Debian mirror found in {apt_dir}/sources.list*",
        hint="add a `deb http://deb.debian.org/debian bookworm main` source",
    )


def _remove_crashed_builds(rootfs: Path) -> None:
    """Remove `<rootfs>.tmp.<pid>` dirs whose builder is gone."""
    for tmp in rootfs.parent.glob(rootfs.name + ".tmp.*"):
        pid = tmp.name.rsplit(".", 1)[-1]
        if not (pid.isdigit() and alive(int(pid), None) and int(pid) != os.getpid()):
            remove_tree(tmp)


def _post_process(root: Path) -> None:
    """Make the tree a template: no .debs, host keys, machine-ids or man-db trigger (idempotent)."""
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    # dbus wrote its own id at install; systemd would copy it into every host's machine-id
    dbus_id = root / "var/lib/dbus/machine-id"
    dbus_id.unlink(missing_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    (root / "var/lib/man-db/auto-update").unlink(missing_ok=True)


def build_rootfs(force: bool = False, config: HostsConfig | None = None) -> Path:
    """Debootstrap the bookworm rootfs once (about 40 s) and return its path.

    Goes through the apt proxy on the bridge when it runs, so rebuilding needs no download.
    """
    cfg = config or HostsConfig.from_env()
    rootfs = cfg.rootfs
    if rootfs_ready(rootfs) and not force:
        return rootfs
    require_root()
    tools = require_tools(["debootstrap", "unshare"])
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    with locked(rootfs.parent / (rootfs.name + ".lock")):
        if rootfs_ready(rootfs) and not force:
            return rootfs  # another process built it while we waited
        _remove_crashed_builds(rootfs)
        mirror = detect_mirror()
        tmp = rootfs.parent / f"{rootfs.name}.tmp.{os.getpid()}"
        log = rootfs.parent / f"{rootfs.name}.log"
        env = dict(os.environ)
        if port_open(cfg.bridge_address, 3142, timeout=0.2):
            env["http_proxy"] = cfg.proxy_url
        args = [
            tools["unshare"],
            "--mount",
            "--propagation",
            "private",
            tools["debootstrap"],
            "--variant=minbase",
            "--include=" + ",".join(PACKAGES),
            SUITE,
            str(tmp),
            mirror,
        ]
        t0 = time.monotonic()
        with open(log, "w") as out:
            rc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env).returncode
        if rc != 0 or not rootfs_ready(tmp):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            remove_tree(tmp)
            raise deploy_error(
                "hosts.rootfs",
                f"debootstrap of {SUITE} from {mirror} failed (exit {rc}); log: {log}\n{tail}",
            )
        _post_process(tmp)
        if rootfs.exists():
            old = rootfs.parent / f"{rootfs.name}.old.{os.getpid()}"
            rootfs.rename(old)
            tmp.rename(rootfs)
            remove_tree(old)
        else:
            tmp.rename(rootfs)
        with open(log, "a") as out:
            out.write(f"pyclan: rootfs built in {time.monotonic() - t0:.1f} s\n")
    return rootfs
