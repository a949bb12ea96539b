"""Deploy at scale: `pyclan machines update --all` to N real local hosts.

For each N: start N local hosts (`pyclan hosts`, own bridge and state so nothing else is
touched), write a clan whose service gives every machine 10 files, a user and a systemd unit,
then time the whole `pyclan machines update --all --json` command (a new process, as a user
runs it):

- first update: every host gets generation 0 and 1 (objects, user, unit started);
- no-op update: nothing changed, one probe per host (median of the runs);
- one-file change: one file's content changes on every host (median of the runs).

`--sizes 5,20,max`: `max` keeps adding hosts (in steps) until a host fails to boot or
`--max-hosts` is reached, and measures the largest size that booted. Every booted systemd
holds inotify instances; the run raises fs.inotify.max_user_instances for its duration and
puts the old value back. Needs root and the hosts' rootfs (built on first use).

    sudo python benchmarks/deploy_scale.py [--sizes 5,20,max] [--runs 3] [--write]

`--write` puts the results into BENCHMARKS.md between `<!-- deploy_scale -->` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pyclan.errors import ClanError
from pyclan.hosts import control as hosts
from pyclan.hosts.config import HostsConfig

ROOT = Path(__file__).resolve().parents[1]
INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")
BEGIN, END = "<!-- deploy_scale -->", "<!-- /deploy_scale -->"

SERVICE = '''
from pydantic import BaseModel

from pyclan.services import InstanceContext, MachineConfig, Service

service = Service("bench", description="deploy benchmark: a few files, a user, a unit")


class Settings(BaseModel):
    version: str = "1"


@service.role("default", interface=Settings)
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    c = MachineConfig()
    for i in range(9):
        c.file(f"/etc/bench/static-{i}.conf", f"machine {ctx.machine.name}, file {i}\\n" * 20)
    c.file("/etc/bench/changing.conf", f"version {ctx.settings.version}\\n")
    c.user("bench", groups=[], shell="/bin/sh")
    unit = "[Unit]\\nDescription=bench\\n[Service]\\nExecStart=/bin/sleep infinity\\n"
    c.unit("bench.service", unit + "[Install]\\nWantedBy=multi-user.target\\n")
    return c
'''


def pyclan() -> list[str]:
    exe = Path(sys.executable).parent / "pyclan"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from pyclan.cli.main import run; run()"]


def write_clan(root: Path, names: list[str], version: str) -> None:
    (root / "services").mkdir(parents=True, exist_ok=True)
    (root / "services" / "bench.py").write_text(SERVICE)
    inventory = {
        "meta": {"name": "bench"},
        "machines": {n: {} for n in names},
        "instances": {
            "bench": {
                "module": {"name": "bench", "input": "self"},
                "roles": {"default": {"machines": {n: {} for n in names}, "settings": {"version": version}}},
            }
        },
    }
    (root / "inventory.json").write_text(json.dumps(inventory))


def update(root: Path, env: dict[str, str], expect_changed: bool, n: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [*pyclan(), "-C", str(root), "machines", "update", "--all", "--json", "--jobs", "256"],
        env=env, capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"update failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    reports = json.loads(proc.stdout)
    changed = sum(1 for r in reports if r["changed"])
    if len(reports) != n or changed != (n if expect_changed else 0):
        raise SystemExit(f"expected {n} hosts, changed={expect_changed}; got {changed} changed of {len(reports)}")
    return elapsed


def measure(n: int, runs: int, cfg: HostsConfig, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    names = [f"bench-{i:03d}" for i in range(1, n + 1)]
    t0 = time.perf_counter()
    hosts.up(names, config=cfg)
    boot = time.perf_counter() - t0
    try:
        root = tmp / f"clan-{n}"
        write_clan(root, names, "1")
        first = update(root, env, True, n)
        noop = [update(root, env, False, n) for _ in range(runs)]
        change = []
        for i in range(runs):
            write_clan(root, names, str(i + 2))
            change.append(update(root, env, True, n))
    finally:
        hosts.down(names, config=cfg)
    return {
        "hosts": n, "boot": boot, "first": first,
        "noop": statistics.median(noop), "change": statistics.median(change), "noop_all": noop, "change_all": change,
    }


def largest(cfg: HostsConfig, limit: int, step: int) -> int:
    """How many hosts boot at once here (stepping up until one fails or `limit` is reached)."""
    best = 0
    n = step
    while n <= limit:
        names = [f"bench-{i:03d}" for i in range(1, n + 1)]
        try:
            hosts.up(names, config=cfg)
        except ClanError as exc:
            print(f"  {n} hosts: {exc.problems[0].message.splitlines()[0]}", file=sys.stderr)
            break
        finally:
            hosts.down(config=cfg)
        best = n
        n += step
    return best


def render(results: list[dict[str, Any]], runs: int, note: str) -> str:
    lines = [
        BEGIN,
        "## Deploy at scale (`benchmarks/deploy_scale.py`)",
        "",
        "`pyclan machines update --all` (a new process each time, as a user runs it, with Python's bytecode",
        "caches) to N local hosts (systemd-nspawn, sshd; each machine: 10 files, a user, a systemd unit).",
        f"Wall time of the whole command; no-op and one-file change: median of {runs} runs.",
        "Targets: no-op of 20 hosts < 2 s, one-file change of 20 hosts < 4 s. The last row is the",
        "largest number of hosts that booted here (searched up to `--max-hosts`).",
        "",
        "| hosts | first update | no-op update | one file changed | hosts booted in |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['hosts']} | {r['first']:.2f} s | {r['noop']:.2f} s | {r['change']:.2f} s | {r['boot']:.1f} s |"
        )
    lines += ["", note, END]
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        new = head + text + ("\n" + tail if tail else "")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="5,20,max", help="comma-separated host counts; `max` = as many as boot")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-hosts", type=int, default=120, help="upper bound for `max` (addresses allow 244)")
    parser.add_argument("--step", type=int, default=20, help="step when searching for `max`")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    args = parser.parse_args()

    cfg = HostsConfig.from_env({
        "PYCLAN_HOSTS_DIR": os.environ.get("PYCLAN_BENCH_HOSTS_DIR", "/tmp/pyclan-bench-hosts"),
        "PYCLAN_HOSTS_BRIDGE": os.environ.get("PYCLAN_BENCH_BRIDGE", "pcbench0"),
        "PYCLAN_HOSTS_NET": os.environ.get("PYCLAN_BENCH_NET", "10.231.60"),
        **{k: v for k, v in os.environ.items() if k in ("PYCLAN_ROOTFS", "PYCLAN_HOSTS_APT_CACHE")},
    })
    old_limit = INOTIFY.read_text().strip()
    INOTIFY.write_text(str(max(int(old_limit), 16384)))
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "PYCLAN_HOSTS_DIR": str(cfg.state_dir), "PYCLAN_HOSTS_BRIDGE": cfg.bridge, "PYCLAN_HOSTS_NET": cfg.net,
                "PYCLAN_CACHE_DIR": str(Path(tmp) / "cache"),
            }
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # measure pyclan as installed: with bytecode caches
            hosts.down(config=cfg)
            hosts.build_rootfs(config=cfg)
            sizes: list[int] = []
            for size in args.sizes.split(","):
                if size == "max":
                    found = largest(cfg, args.max_hosts, args.step)
                    print(f"largest size that boots here (step {args.step}, limit {args.max_hosts}): {found}")
                    if found and found not in sizes:
                        sizes.append(found)
                else:
                    sizes.append(int(size))
            for n in sizes:
                r = measure(n, args.runs, cfg, env, Path(tmp))
                results.append(r)
                print(
                    f"{n:4d} hosts: boot {r['boot']:.1f} s, first {r['first']:.2f} s, no-op {r['noop']:.2f} s "
                    f"{[round(x, 2) for x in r['noop_all']]}, one file {r['change']:.2f} s "
                    f"{[round(x, 2) for x in r['change_all']]}",
                    flush=True,
                )
    finally:
        hosts.down(config=cfg)
        INOTIFY.write_text(old_limit)
    note = (
        f"Measured on {platform.node() or 'this machine'}: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}; controller and all hosts share the same cores."
    )
    if args.write:
        write_section(render(results, args.runs, note))
        print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
