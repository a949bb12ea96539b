"""Local test hosts: real Debian machines on this machine, one per inventory machine.

Each host is the cached bookworm rootfs under a per-host overlay, booted by systemd-nspawn
with systemd as PID 1, in its own network namespace on a bridge, with its own host key and
sshd. `up`/`down` are idempotent and clean up after crashed runs; `status`/`host_for` only
read the state, so the deploy code can find hosts without root.

Facts and pitfalls behind the details: docs in shared/design/testhosts.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from pyclan.hosts import supervisor as hosts_supervisor
from pyclan.hosts.config import HOST_OFFSET, MAX_INDEX, HostsConfig, validate_name
from pyclan.hosts.net import (
    add_host_net,
    adopt_legacy_bridge,
    ensure_bridge,
    may_clean_orphans,
    netns_pids,
    our_netns,
    our_veths,
    remove_bridge,
    remove_host_net,
)
from pyclan.hosts.proxy import ensure_proxy, proxy_running, stop_proxy
from pyclan.hosts.rootfs import build_rootfs as _build_rootfs
from pyclan.hosts.rootfs import rootfs_ready
from pyclan.hosts.state import (
    HostInfo,
    HostState,
    delete,
    free_index,
    key_of,
    load,
    load_all,
    save,
    write_known_hosts,
)
from pyclan.hosts.system import (
    TOOLS,
    alive,
    cgroup_dirs,
    cgroup_mounts,
    deploy_error,
    kill,
    kill_cgroup,
    locked,
    port_open,
    reap,
    remove_cgroup,
    remove_empty_cgroup_parents,
    remove_tree,
    require_root,
    require_tools,
    run,
    start_time,
    wait_gone,
)

__all__ = [
    "HostInfo",
    "HostsConfig",
    "build_rootfs",
    "cleanup_stale",
    "client_key_path",
    "down",
    "host_for",
    "known_hosts_path",
    "require_root",
    "rootfs_ready",
    "ssh_command",
    "status",
    "up",
]

SSH_PORT = 22
BOOT_TIMEOUT = 120.0
POWEROFF_GRACE = 10.0
#: supervisors we started from this process, so they can be reaped (PID 1 may not reap)
_children: dict[int, subprocess.Popen[bytes]] = {}


def _cfg(config: HostsConfig | None) -> HostsConfig:
    return config or HostsConfig.from_env()


# --- public helpers for the deploy code ------------------------------------------------------
def client_key_path(config: HostsConfig | None = None) -> Path:
    """pyclan's own SSH client key; its public half is every host's authorized_keys."""
    return _cfg(config).client_key


def known_hosts_path(config: HostsConfig | None = None) -> Path:
    """known_hosts with `<address> ssh-ed25519 …` for every host (for StrictHostKeyChecking=yes)."""
    return _cfg(config).known_hosts


def ssh_command(host: HostInfo, *command: str, config: HostsConfig | None = None) -> list[str]:
    """An OpenSSH command line that logs into `host` as root with strict host key checking."""
    cfg = _cfg(config)
    return [
        "ssh", "-F", "/dev/null", "-i", str(cfg.client_key), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={cfg.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
        "--", host.target_host, *command,
    ]  # fmt: skip


def host_for(name: str, config: HostsConfig | None = None) -> HostInfo | None:
    """The running local host for machine `name`, or None (needs no root)."""
    cfg = _cfg(config)
    state = load(cfg, name)
    if state is None or not _running(state):
        return None
    return state.info(running=True)


def status(config: HostsConfig | None = None) -> list[HostInfo]:
    """Every host in the state, running or not (needs no root)."""
    return [s.info(running=_running(s)) for s in load_all(_cfg(config))]


def build_rootfs(force: bool = False, config: HostsConfig | None = None) -> Path:
    """Build the shared rootfs once (cached); `force` rebuilds it when no host uses it."""
    cfg = _cfg(config)
    if force and any(_alive(s) for s in load_all(cfg)):
        raise deploy_error(
            "hosts.rootfs",
            "cannot rebuild the rootfs while hosts run on it",
            hint="run `pyclan hosts down` first",
        )
    return _build_rootfs(force=force, config=cfg)


# --- up --------------------------------------------------------------------------------------
def up(
    names: Sequence[str], config: HostsConfig | None = None, addresses: Mapping[str, str] | None = None
) -> list[HostInfo]:
    """Start a host for each name (already running ones are kept) and wait until booted.

    `addresses` are wished-for addresses (e.g. the machine's `internet` host): used when they
    lie in the hosts' network and are free, so the inventory and the local hosts agree.
    All or nothing: if one host fails to boot, the hosts started by this call are removed
    again and a ClanError says why.
    """
    cfg = _cfg(config)
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        validate_name(name)
    require_root()
    tools = require_tools([t for t in TOOLS if t != "debootstrap"])  # only to build the rootfs
    with locked(cfg.lock_file):
        cleanup_stale(cfg, _have_lock=True)
        if not wanted:
            return []
        _raise_inotify_limits()
        ensure_bridge(cfg)
        ensure_proxy(cfg)
        _build_rootfs(config=cfg)
        ensure_client_key(cfg)
        states = {s.name: s for s in load_all(cfg)}
        started: list[HostState] = []
        try:
            for name in wanted:
                if name not in states:
                    wish = (addresses or {}).get(name)
                    state = _start(cfg, tools, name, list(states.values()), wish)
                    states[name] = state
                    started.append(state)
            write_known_hosts(cfg, list(states.values()))
            _wait_booted(cfg, started)
        except BaseException:
            for state in started:
                _teardown(cfg, state)
            write_known_hosts(cfg)
            raise
        return [states[n].info(running=True) for n in wanted]


INOTIFY_LIMITS = {"max_user_instances": 8192, "max_user_watches": 524288}


def _raise_inotify_limits() -> None:
    """Every booted systemd holds inotify instances; the kernel's default per-user limit
    (128 instances) caps the hosts that can run at once at about 12. Raise it, never lower it,
    as container tools (LXD, Docker's docs) do."""
    for name, wanted in INOTIFY_LIMITS.items():
        path = Path("/proc/sys/fs/inotify") / name
        with contextlib.suppress(OSError, ValueError):
            if int(path.read_text()) < wanted:
                path.write_text(f"{wanted}\n")


def ensure_client_key(cfg: HostsConfig | None = None) -> Path:
    """The key pyclan logs into local hosts with, made on first use (hosts accept it when they boot)."""
    cfg = _cfg(cfg)
    if not cfg.client_key.exists():
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = cfg.client_key.with_name(f".id_ed25519.{os.getpid()}")
        for f in (tmp, tmp.with_name(tmp.name + ".pub")):
            f.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pyclan-hosts", "-f", str(tmp)])
        os.replace(tmp.with_name(tmp.name + ".pub"), cfg.client_key.with_name("id_ed25519.pub"))
        os.replace(tmp, cfg.client_key)
    return cfg.client_key


def _mkdir_like(rootfs: Path, upper: Path, rel: str) -> Path:
    """Create `upper/rel` with the mode and owner the same dir has in the rootfs.

    The upper dir of an overlay decides the merged dir's metadata, so e.g. /root must stay 0700.
    """
    path = upper
    for part in Path(rel).parts:
        path = path / part
        lower = rootfs / path.relative_to(upper)
        if not path.exists():
            path.mkdir()
            st = lower.stat() if lower.is_dir() else None
            os.chmod(path, st.st_mode & 0o7777 if st else 0o700)
            if st:
                os.chown(path, st.st_uid, st.st_gid)
    return path


def _prepare_upper(cfg: HostsConfig, state: HostState, upper: Path) -> None:
    """Write the host's identity into the overlay's upper dir before it is mounted."""
    name, address, rootfs = state.name, state.address, cfg.rootfs
    ssh_dir = _mkdir_like(rootfs, upper, "etc/ssh")
    key = ssh_dir / "ssh_host_ed25519_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(key)])
    state.host_key = key_of(key.with_name(key.name + ".pub").read_text())
    files = {
        "etc/hostname": f"{name}\n",
        "etc/hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{address}\t{name}\n",
        "etc/ssh/sshd_config.d/00-pyclan.conf": (
            f"ListenAddress {address}\nHostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nUseDNS no\n"
        ),
        # the hosts' only way to the mirror: the proxy on the bridge
        "etc/apt/apt.conf.d/01pyclan-proxy": f'Acquire::http::Proxy "{cfg.proxy_url}";\n',
        # an id of its own (the rootfs has none), kept across reboots like a real machine's
        "etc/machine-id": uuid.uuid4().hex + "\n",
    }
    for rel, text in files.items():
        _mkdir_like(rootfs, upper, str(Path(rel).parent))
        (upper / rel).write_text(text)
    dbus_id = _mkdir_like(rootfs, upper, "var/lib/dbus") / "machine-id"
    dbus_id.symlink_to("/etc/machine-id")  # also for rootfs builds that kept dbus's own id
    ssh = _mkdir_like(rootfs, upper, "root/.ssh")
    auth = ssh / "authorized_keys"
    auth.write_text(cfg.client_key.with_name("id_ed25519.pub").read_text())
    os.chmod(auth, 0o600)


def _host_cgroup(cfg: HostsConfig, name: str) -> str:
    return f"{cfg.cgroup_rel}/{name}"


def _wished_index(cfg: HostsConfig, address: str | None, states: list[HostState]) -> int | None:
    """The index giving `address`, if it is in our network and not taken."""
    if address is None:
        return None
    prefix, _, last = address.rpartition(".")
    if prefix != cfg.net or not last.isdigit():
        return None
    index = int(last) - HOST_OFFSET
    if not 1 <= index <= MAX_INDEX or any(s.index == index for s in states):
        return None
    return index


def _start(
    cfg: HostsConfig, tools: dict[str, str], name: str, states: list[HostState], wish: str | None = None
) -> HostState:
    """Create the host's state, overlay dirs, netns and cgroups, then start its supervisor."""
    index = _wished_index(cfg, wish, states) or free_index(states, MAX_INDEX)
    if index is None:
        raise deploy_error("hosts", f"no free address left in {cfg.net}.0/24 for host {name}")
    state = HostState(name, index, cfg.address(index), cfg.netns(name), cfg.veth(index))
    save(cfg, state)  # first, so that a crash from here on is cleaned up by cleanup_stale
    run_dir = cfg.host_run_dir(name)
    remove_tree(run_dir)
    for d in ("upper", "work", "root"):
        (run_dir / d).mkdir(parents=True)
    _prepare_upper(cfg, state, run_dir / "upper")
    save(cfg, state)
    add_host_net(cfg, state.netns, state.veth, state.address)
    cgroups = [str(m / _host_cgroup(cfg, name)) for m in cgroup_mounts()]
    for cg in cgroups:
        Path(cg).mkdir(parents=True, exist_ok=True)
    spec = {
        "name": name,
        "nspawn": tools["systemd-nspawn"],
        "rootfs": str(cfg.rootfs),
        "root": str(run_dir / "root"),
        "upper": str(run_dir / "upper"),
        "work": str(run_dir / "work"),
        "netns_path": f"/run/netns/{state.netns}",
        "cgroups": cgroups,
        "caller_mntns": os.readlink("/proc/self/ns/mnt"),
    }
    args = [
        tools["unshare"], "--mount", "--propagation", "private",
        # by path, isolated and without site: stdlib only, fast, and unaffected by the package
        sys.executable, "-I", "-S", hosts_supervisor.__file__, json.dumps(spec),
    ]  # fmt: skip
    with open(run_dir / "log", "wb") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    _children[proc.pid] = proc
    state.pid, state.pid_start = proc.pid, start_time(proc.pid)
    save(cfg, state)
    return state


def _log_tail(cfg: HostsConfig, name: str, lines: int = 15) -> str:
    try:
        text = (cfg.host_run_dir(name) / "log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_booted(cfg: HostsConfig, states: list[HostState], timeout: float = BOOT_TIMEOUT) -> None:
    """Wait, for all hosts at once, until sshd answers and systemd has finished booting."""
    deadline = time.monotonic() + timeout
    waiting = {s.name: s for s in states}
    probes: dict[str, subprocess.Popen[str]] = {}
    last_error: dict[str, str] = {}
    retry_at: dict[str, float] = {}
    while waiting:
        for name, state in list(waiting.items()):
            probe = probes.get(name)
            if probe is None:
                if time.monotonic() < retry_at.get(name, 0.0):
                    continue
                if not _alive(state):
                    raise deploy_error(f"hosts.{name}", f"host {name} stopped while booting:\n{_log_tail(cfg, name)}")
                if port_open(state.address, SSH_PORT, timeout=0.1):
                    cmd = ssh_command(state.info(True), "systemctl", "is-system-running", "--wait", config=cfg)
                    probes[name] = subprocess.Popen(
                        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True,
                    )  # fmt: skip
                continue
            if probe.poll() is None:
                continue
            out, err = probe.communicate()
            answer = out.strip()
            if answer in ("running", "degraded"):
                state.phase = "running"
                save(cfg, state)
                del waiting[name]
            elif probe.returncode == 255 or not answer:  # ssh itself failed: sshd not ready yet
                last_error[name] = err.strip()
                del probes[name]
                retry_at[name] = time.monotonic() + 0.2
            else:
                raise deploy_error(
                    f"hosts.{name}",
                    f"host {name} booted into state {answer!r}, not running",
                    hint="look at `systemctl --failed` in the host",
                )
        if not waiting:
            break
        if time.monotonic() > deadline:
            for p in probes.values():
                p.kill()
                p.wait()
            name = next(iter(waiting))
            detail = last_error.get(name) or _log_tail(cfg, name)
            raise deploy_error(f"hosts.{name}", f"host {name} did not boot within {timeout:.0f} s: {detail}")
        time.sleep(0.02)


# --- down ------------------------------------------------------------------------------------
def down(names: Sequence[str] | None = None, config: HostsConfig | None = None) -> list[str]:
    """Stop the named hosts (None: all) and remove every trace; returns the names stopped.

    When no host is left, the apt proxy and the bridge go too.
    """
    cfg = _cfg(config)
    for name in names or []:
        validate_name(name)
    require_root()
    with locked(cfg.lock_file):
        cleaned = cleanup_stale(cfg, _have_lock=True)
        states = load_all(cfg)
        targets = states if names is None else [s for s in states if s.name in set(names)]
        _stop(cfg, targets)
        if not load_all(cfg):
            stop_proxy(cfg, orphans=may_clean_orphans(cfg))
            remove_bridge(cfg)
            remove_empty_cgroup_parents(cfg.cgroup_rel)
        write_known_hosts(cfg)
    wanted = set(names) if names is not None else None
    return sorted({s.name for s in targets} | {n for n in cleaned if wanted is None or n in wanted})


def _stop(cfg: HostsConfig, states: list[HostState]) -> None:
    """Power the hosts off (SIGTERM, passed to nspawn), SIGKILL after a grace time, tear down."""
    running = {s.pid: s.pid_start for s in states if s.pid and _alive(s)}
    for pid in running:
        kill(pid, signal.SIGTERM)
    for pid in wait_gone(running, POWEROFF_GRACE):
        kill(pid)
    for state in states:
        _teardown(cfg, state)


def _teardown(cfg: HostsConfig, state: HostState) -> None:
    """Remove everything a host owns, whatever state it is in (also after a crash)."""
    if state.pid and _alive(state):
        kill(state.pid)
    rel = _host_cgroup(cfg, state.name)
    kill_cgroup(rel)  # nspawn and the container, also when the supervisor was killed
    for pid in netns_pids(state.netns) if Path("/run/netns", state.netns).exists() else []:
        kill(pid)
    if state.pid:
        wait_gone({state.pid: state.pid_start}, 2.0)
        reap(state.pid)
        proc = _children.pop(state.pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)
    remove_cgroup(rel)
    remove_host_net(state.netns, state.veth)
    remove_tree(cfg.host_run_dir(state.name))
    delete(cfg, state.name)


# --- stale state -----------------------------------------------------------------------------
def cleanup_stale(config: HostsConfig | None = None, *, _have_lock: bool = False) -> list[str]:
    """Remove what a crashed run left: dead hosts in the state, and netns, veths, cgroups,
    overlay dirs and proxies of this configuration that no live host owns.

    Returns the names of hosts removed from the state. Called by `up` and `down`.
    """
    cfg = _cfg(config)
    require_root()
    if not _have_lock:
        with locked(cfg.lock_file):
            return cleanup_stale(cfg, _have_lock=True)
    cleaned: list[str] = []
    live: list[HostState] = []
    for state in load_all(cfg):
        if state.phase == "running" and _alive(state):
            live.append(state)
        else:
            _teardown(cfg, state)
            cleaned.append(state.name)
    live_names = {s.name for s in live}
    adopt_legacy_bridge(cfg, {s.veth for s in live})
    if cfg.run_dir.is_dir():
        for d in cfg.run_dir.iterdir():
            if d.name not in live_names:
                remove_tree(d)
    if may_clean_orphans(cfg):
        _remove_orphans(cfg, live)
    if not live:
        write_known_hosts(cfg, [])
    return cleaned


def _remove_orphans(cfg: HostsConfig, live: list[HostState]) -> None:
    """Kernel objects and proxies named after our bridge that no live host of ours owns."""
    live_names = {s.name for s in live}
    for netns in our_netns(cfg):
        if netns[len(cfg.netns_prefix) :] not in live_names:
            remove_host_net(netns, "")
    live_veths = {s.veth for s in live}
    for veth in our_veths(cfg):
        if veth not in live_veths:
            remove_host_net("", veth)
    for top in cgroup_dirs(cfg.cgroup_rel):
        for d in top.iterdir():
            if d.is_dir() and d.name not in live_names:
                kill_cgroup(_host_cgroup(cfg, d.name))
                remove_cgroup(_host_cgroup(cfg, d.name))
    if not proxy_running(cfg):
        stop_proxy(cfg)  # forgets a dead proxy, stops one orphaned on our address


# --- liveness --------------------------------------------------------------------------------
def _alive(state: HostState) -> bool:
    return alive(state.pid, state.pid_start)


def _running(state: HostState) -> bool:
    return state.phase == "running" and _alive(state) and port_open(state.address, SSH_PORT)
