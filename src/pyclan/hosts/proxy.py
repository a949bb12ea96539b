"""The apt caching proxy on the bridge address: the hosts' only way to the Debian mirror.

apt-cacher-ng runs from a minimal config dir of our own (no remaps), bound only to the
bridge address. It is never started without `-c`: without it the binary starts a daemon
with the default config on 0.0.0.0:3142. The bind address is also on its command line,
so a proxy orphaned by a crash can be recognised and stopped.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time

from pyclan.hosts.config import PROXY_PORT, HostsConfig
from pyclan.hosts.system import (
    alive,
    all_pids,
    atomic_write,
    cmdline,
    deploy_error,
    kill,
    port_open,
    reap,
    remove_tree,
    require_tools,
    start_time,
    wait_gone,
)

#: proxies started from this process (kept so they can be reaped; PID 1 may not reap)
_children: dict[int, subprocess.Popen[bytes]] = {}


def _recorded(cfg: HostsConfig) -> tuple[int, int | None] | None:
    try:
        data = json.loads((cfg.proxy_dir / "pid.json").read_text())
        return int(data["pid"]), data.get("start")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def proxy_running(cfg: HostsConfig) -> bool:
    rec = _recorded(cfg)
    return rec is not None and alive(*rec)


def _orphans(cfg: HostsConfig) -> dict[int, int | None]:
    """apt-cacher-ng processes bound to our bridge address that our pid file does not name."""
    rec = _recorded(cfg)
    mine = rec[0] if rec and alive(*rec) else None
    bind = f"BindAddress={cfg.bridge_address}"
    found: dict[int, int | None] = {}
    for pid in all_pids():
        args = cmdline(pid)
        if pid != mine and args and args[0].endswith("apt-cacher-ng") and bind in args:
            found[pid] = start_time(pid)
    return found


def stop_orphans(cfg: HostsConfig) -> None:
    orphans = _orphans(cfg)
    for pid in orphans:
        kill(pid)
    wait_gone(orphans, 2.0)


def ensure_proxy(cfg: HostsConfig) -> None:
    """Start the proxy on `<bridge address>:3142` unless ours already runs (bridge must exist)."""
    if proxy_running(cfg):
        return
    stop_orphans(cfg)
    exe = require_tools(["apt-cacher-ng"])["apt-cacher-ng"]
    d = cfg.proxy_dir
    remove_tree(d)
    (d / "conf").mkdir(parents=True)
    (d / "log").mkdir()
    cfg.apt_cache.mkdir(parents=True, exist_ok=True)
    atomic_write(
        d / "conf/acng.conf",
        f"CacheDir: {cfg.apt_cache}\n"
        f"LogDir: {d / 'log'}\n"
        "SupportDir: /usr/lib/apt-cacher-ng\n"
        f"SocketPath: {d / 'socket'}\n"
        f"PidFile: {d / 'acng.pid'}\n"
        "ExThreshold: 4\n",
    )
    with open(d / "log/stdout", "w") as out:
        proc = subprocess.Popen(
            [
                exe,
                "-c",
                str(d / "conf"),
                "ForeGround=1",
                f"Port={PROXY_PORT}",
                f"BindAddress={cfg.bridge_address}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    atomic_write(d / "pid.json", json.dumps({"pid": proc.pid, "start": start_time(proc.pid)}) + "\n")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if port_open(cfg.bridge_address, PROXY_PORT, timeout=0.2):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    log = (d / "log/stdout").read_text(errors="replace").strip()
    stop_proxy(cfg)
    raise deploy_error(
        "hosts.apt-proxy",
        f"apt-cacher-ng did not start on {cfg.bridge_address}:{PROXY_PORT}: {log[-500:]}",
    )


def stop_proxy(cfg: HostsConfig, orphans: bool = True) -> None:
    """Stop our proxy and forget it; `orphans`: also ones a crash left on our address."""
    rec = _recorded(cfg)
    if rec is not None:
        if alive(*rec):
            kill(rec[0], signal.SIGTERM)
            for pid in wait_gone({rec[0]: rec[1]}, 2.0):
                kill(pid)
                wait_gone({pid: rec[1]}, 2.0)
        reap(rec[0])
        proc = _children.pop(rec[0], None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)
    if orphans:
        stop_orphans(cfg)
    remove_tree(cfg.proxy_dir)
