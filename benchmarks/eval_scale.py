"""Evaluation at scale: resolve + evaluate every machine of generated inventories.

Inventories of N machines (default 100, 1,000, 10,000) with 5 services × 2 instances; per
instance a `server` role with 2 named machines carrying machine settings and a `client` role
via tag `all` plus 2 tags with tag-level settings and role settings, so every machine is in all
10 instances. Each size runs in a fresh process (3 runs, median) that reports the time to load
+ resolve, the time to evaluate every machine's configuration, and its peak RSS.

Then, as users run them, the whole commands `pyclan check` and `pyclan inventory resolve --json`
(CPU time of the process, user + system, and its peak RSS), beside `benchmarks/floor.py` (the
same walk in minimal pure Python) measured in the same run: the ratio is the cost of pyclan's
validation, defaults and error reporting.

    python benchmarks/eval_scale.py [--sizes 100 1000 10000] [--runs 3] [--cli-sizes 10000 100000]
                                    [--cli-runs 3] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICE = """\
from pydantic import BaseModel, Field
from pyclan.services import InstanceContext, MachineConfig, Service

service = Service("bench-{k}", description="benchmark service {k}")


class Server(BaseModel):
    port: int = 8000
    listen: list[str] = Field(default_factory=list)
    name: str


class Client(BaseModel):
    retries: int = 3
    labels: list[str] = Field(default_factory=list)
    options: dict[str, str] = Field(default_factory=dict)


@service.role("server", interface=Server, description="serves")
def server(ctx: InstanceContext[Server]) -> MachineConfig:
    return MachineConfig().file(
        f"/etc/bench/{{ctx.instance_name}}-server.conf", f"{{ctx.settings.name}}:{{ctx.settings.port}}\\n"
    )


@service.role("client", interface=Client, description="uses the servers")
def client(ctx: InstanceContext[Client]) -> MachineConfig:
    servers = ",".join(sorted(ctx.roles["server"].machines))
    return MachineConfig().file(
        f"/etc/bench/{{ctx.instance_name}}-client.conf",
        f"{{servers}} retries={{ctx.settings.retries}} labels={{','.join(ctx.settings.labels)}}\\n",
    )
"""


def make_clan(root: Path, n: int) -> None:
    machines = {}
    for i in range(n):
        tags = ["even" if i % 2 == 0 else "odd", f"rack{i % 10}"]
        machines[f"m{i:05d}"] = {"tags": tags}
    instances = {}
    for k in range(5):
        for j in range(2):
            s1, s2 = f"m{(k * 2 + j) % n:05d}", f"m{(k * 2 + j + 1) % n:05d}"
            instances[f"svc{k}-{j}"] = {
                "module": {"name": f"bench-{k}", "input": "self"},
                "roles": {
                    "server": {
                        "machines": {
                            s1: {"settings": {"name": "primary", "listen": ["0.0.0.0"]}},
                            s2: {"settings": {"name": "secondary", "port": 8001}},
                        },
                        "settings": {"listen": ["::"]},
                    },
                    "client": {
                        "tags": {
                            "all": {},
                            "even": {"settings": {"labels": ["even"]}},
                            "rack1": {"settings": {"labels": ["rack1"], "options": {"zone": "r1"}}},
                        },
                        "settings": {"retries": 5, "labels": ["base"]},
                    },
                },
            }
    inventory = {"meta": {"name": f"bench{n}"}, "machines": machines, "instances": instances}
    (root / "services").mkdir(parents=True)
    for k in range(5):
        (root / "services" / f"bench-{k}.py").write_text(SERVICE.format(k=k))
    (root / "inventory.json").write_text(json.dumps(inventory))


def child(clan_dir: Path) -> None:
    """One measured run in this process; prints a JSON line."""
    from pyclan.clan import open_clan

    t0 = time.perf_counter()
    clan = open_clan(clan_dir, {})
    resolved = clan.resolved
    t1 = time.perf_counter()
    configs = clan.evaluator.configs()
    t2 = time.perf_counter()
    files = sum(len(c.files) for c in configs.values())
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "resolve": t1 - t0,
                "evaluate": t2 - t1,
                "rss_mib": rss_mib,
                "machines": len(resolved.machine_names),
                "files": files,
            }
        )
    )


def measure(n: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "clan"
        make_clan(root, n)
        results = []
        for _ in range(runs):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(root)], check=True, capture_output=True, text=True,
                env=child_env(),
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in results) for k in ("resolve", "evaluate", "rss_mib")}
    med["total"] = statistics.median(r["resolve"] + r["evaluate"] for r in results)
    med["files"] = results[0]["files"]
    return med


FLOOR = Path(__file__).with_name("floor.py")


def pyclan_argv() -> list[str]:
    exe = Path(sys.executable).with_name("pyclan")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from pyclan.cli.launch import run; run()"]


def child_env() -> dict[str, str]:
    """As users run pyclan: with bytecode caches (the warm-up run writes them). 100,000 machines
    make a 4 MiB inventory.json, over the default 2 MiB limit: allowed as a user would allow it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYCLAN_INVENTORY_JSON_MIB": env.get("PYCLAN_INVENTORY_JSON_MIB", "64")}


def run_measured(argv: list[str], cwd: Path) -> tuple[float, float, float]:
    """(wall s, CPU s of the child, its peak RSS MiB); output discarded, failure raises."""
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=null, stderr=subprocess.PIPE, env=child_env())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read() if proc.stderr else b""
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed: {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


COMMANDS = {
    "floor": lambda root: [sys.executable, str(FLOOR), str(root)],
    "check": lambda root: [*pyclan_argv(), "check"],
    "resolve --json": lambda root: [*pyclan_argv(), "inventory", "resolve", "--json"],
}


def measure_cli(n: int, runs: int) -> dict[str, dict[str, float]]:
    """Median wall, CPU and peak RSS of the floor and of each command, interleaved per run."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "clan"
        make_clan(root, n)
        samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in COMMANDS}
        for argv in COMMANDS.values():  # bytecode caches
            subprocess.run(argv(root), cwd=root, check=True, capture_output=True, env=child_env())
        for _ in range(runs):
            for name, argv in COMMANDS.items():
                samples[name].append(run_measured(argv(root), root))
    return {
        name: {
            "wall": statistics.median(s[0] for s in got),
            "cpu": statistics.median(s[1] for s in got),
            "rss_mib": statistics.median(s[2] for s in got),
        }
        for name, got in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cli-sizes", type=int, nargs="*", default=[10000, 100000])
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument("--big-runs", type=int, default=1, help="runs for sizes of 100,000 and more")
    parser.add_argument("--write", type=Path, help="update the eval_scale section of this Markdown file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    rows = []
    for n in args.sizes:
        m = measure(n, args.runs)
        rows.append((n, m))
        print(
            f"{n:>6} machines: resolve {m['resolve']:.3f}s  evaluate {m['evaluate']:.3f}s  "
            f"total {m['total']:.3f}s  peak RSS {m['rss_mib']:.0f} MiB  ({m['files']:.0f} files)",
            flush=True,
        )
    cli_rows = []
    for n in args.cli_sizes:
        c = measure_cli(n, args.big_runs if n >= 100_000 else args.cli_runs)
        cli_rows.append((n, c))
        floor = c["floor"]["cpu"]
        for name in ("check", "resolve --json"):
            m = c[name]
            print(
                f"{n:>6} machines: pyclan {name:<15} CPU {m['cpu']:.2f}s  wall {m['wall']:.2f}s  "
                f"peak RSS {m['rss_mib']:.0f} MiB  = {m['cpu'] / floor:.2f}x floor ({floor:.2f}s CPU)",
                flush=True,
            )
    if args.write:
        write_section(args.write, rows, args.runs)
        write_cli_section(args.write, cli_rows, args.cli_runs, args.big_runs)


CLI_TARGETS = {10000: (0.8, None), 100000: (8.0, 1024.0)}  # CPU s, peak RSS MiB


def write_cli_section(
    path: Path, rows: list[tuple[int, dict[str, dict[str, float]]]], runs: int, big_runs: int
) -> None:
    lines = [
        "<!-- eval_cli -->",
        "## Whole commands at scale (`benchmarks/eval_scale.py`, `benchmarks/floor.py`)",
        "",
        "The same inventories, as a user runs the commands: a new process each time, CPU time (user +",
        f"system) and peak RSS of that process, median of {runs} runs ({big_runs} at 100,000). The floor",
        "(`benchmarks/floor.py`) is json.loads + one dict walk per machine × instance × role merging role,",
        "tag and machine settings + json.dumps, in the same run, with the GC off as in pyclan's loops.",
        "Targets: 10,000 machines ≤ 0.8 s CPU; 100,000 machines ≤ 8 s and ≤ 1 GiB; ≤ 2× the floor.",
        "",
        "| machines | command | CPU | target | wall | peak RSS | × floor (target ≤ 2×) | floor CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, c in rows:
        floor = c["floor"]["cpu"]
        cpu_target, rss_target = CLI_TARGETS.get(n, (None, None))
        for name in ("check", "resolve --json"):
            m = c[name]
            target = f"≤ {cpu_target:g} s" if cpu_target else "-"
            if rss_target:
                target += f", ≤ {rss_target / 1024:g} GiB"
            lines.append(
                f"| {n:,} | `{name}` | {m['cpu']:.2f} s | {target} | {m['wall']:.2f} s | {m['rss_mib']:.0f} MiB | "
                f"{m['cpu'] / floor:.2f}× | {floor:.2f} s |"
            )
    lines.append("<!-- /eval_cli -->")
    replace_section(path, "eval_cli", "\n".join(lines))


def replace_section(path: Path, tag: str, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = text.find(f"<!-- {tag} -->"), text.find(f"<!-- /{tag} -->")
    if start != -1 and end != -1:
        text = text[:start] + section + text[end + len(f"<!-- /{tag} -->") :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def write_section(path: Path, rows: list[tuple[int, dict[str, float]]], runs: int) -> None:
    lines = [
        "<!-- eval_scale -->",
        "## Evaluation at scale (`benchmarks/eval_scale.py`)",
        "",
        "5 services × 2 instances; per instance a `server` role (2 named machines with machine settings)",
        "and a `client` role via tag `all` plus 2 tags with tag-level settings and role settings: every",
        f"machine is in all 10 instances. Median of {runs} runs, each in a fresh process, on this 2-core machine.",
        "`resolve` = load inventory.json + resolve members and merged settings; `evaluate` = every",
        "machine's MachineConfig (exports pass + per-instance functions + merge).",
        "",
        "| machines | resolve | evaluate all configs | total | peak RSS | time per machine |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, m in rows:
        lines.append(
            f"| {n:,} | {m['resolve']:.3f} s | {m['evaluate']:.3f} s | {m['total']:.3f} s | "
            f"{m['rss_mib']:.0f} MiB | {m['total'] / n * 1e6:.0f} µs |"
        )
    lines.append("<!-- /eval_scale -->")
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = text.find("<!-- eval_scale -->"), text.find("<!-- /eval_scale -->")
    if start != -1 and end != -1:
        text = text[:start] + section + text[end + len("<!-- /eval_scale -->") :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
