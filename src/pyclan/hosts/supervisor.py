"""The process that runs one local host: `python -I -S …/hosts_supervisor.py SPEC`.

`up` starts it as `unshare --mount --propagation private python … SPEC` (no `--fork`,
so this process *is* the pid `up` records and SIGTERM reaches it). In its private mount
namespace it mounts a tmpfs on /run/systemd/nspawn (/run is not a tmpfs on every machine,
and nspawn refuses to clean a disk there) and the host's overlay; both vanish when the host
stops. It then runs systemd-nspawn, moved into the host's own cgroups (without systemd on
the machine all containers would share one), and starts it again when the host reboots
(exit status 133). SIGTERM is passed on to nspawn, which powers the host off cleanly.

Standard library only: this starts once per host and must start fast.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

REBOOT_STATUS = 133
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str, data: str) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")


def _detach_other_netns(keep: str) -> None:
    """Drop our copies of other hosts' /run/netns mounts: they would pin those netns."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4]
        if target.startswith("/run/netns/") and target != keep:
            _libc.umount2(target.encode(), MNT_DETACH)


def _enter_cgroups(procs_files: list[str]) -> None:
    """Runs in the nspawn child before exec: only nspawn moves, this supervisor stays."""
    for f in procs_files:
        with open(f, "w") as out:
            out.write("0")


def nspawn_args(spec: dict[str, Any]) -> list[str]:
    name = spec["name"]
    return [
        spec["nspawn"],
        "--quiet",
        "-D",
        spec["root"],
        "-M",
        name,
        f"--hostname={name}",
        "-b",
        # no systemd/machined on the machine to register with: both flags are needed
        "--register=no",
        "--keep-unit",
        "--link-journal=no",
        f"--network-namespace-path={spec['netns_path']}",
        # with the path alone nspawn drops CAP_NET_ADMIN and mounts /proc/sys/net read-only
        "--private-network",
        "--capability=CAP_NET_ADMIN",
        "--console=passive",
    ]


def main(argv: list[str]) -> int:
    spec: dict[str, Any] = json.loads(argv[1])
    if os.readlink("/proc/self/ns/mnt") == spec["caller_mntns"]:
        print("hosts_supervisor: refusing to mount outside a private mount namespace", file=sys.stderr)
        return 2
    try:
        procs_files = _prepare(spec)
    except OSError as exc:
        print(f"hosts_supervisor: {exc}", file=sys.stderr)
        return 1
    return _supervise(spec, procs_files)


def _prepare(spec: dict[str, Any]) -> list[str]:
    """Mounts in our private namespace; returns the cgroup.procs files nspawn moves into."""
    Path("/run/systemd/nspawn").mkdir(parents=True, exist_ok=True)
    _mount(f"pyclan-{spec['name']}-nspawn", "/run/systemd/nspawn", "tmpfs", "mode=0755")
    _detach_other_netns(spec["netns_path"])
    _mount(
        f"pyclan-{spec['name']}",
        spec["root"],
        "overlay",
        f"lowerdir={spec['rootfs']},upperdir={spec['upper']},workdir={spec['work']}",
    )
    procs_files = []
    for cg in spec["cgroups"]:
        Path(cg).mkdir(parents=True, exist_ok=True)
        procs_files.append(str(Path(cg, "cgroup.procs")))
    return procs_files


def _supervise(spec: dict[str, Any], procs_files: list[str]) -> int:
    """Run nspawn until it exits for good: again on reboot, SIGTERM passed on."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while True:
        child = subprocess.Popen(
            nspawn_args(spec), stdin=subprocess.DEVNULL, preexec_fn=lambda: _enter_cgroups(procs_files)
        )
        if stopping:
            child.send_signal(signal.SIGTERM)
        rc = child.wait()
        if stopping:
            return 0
        if rc != REBOOT_STATUS:
            print(f"hosts_supervisor: systemd-nspawn exited with status {rc}", file=sys.stderr)
            return rc
        print(f"hosts_supervisor: host {spec['name']} rebooting", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
