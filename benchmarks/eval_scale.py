"""Evaluation at scale: resolve + evaluate every machine of generated inventories.

Inventories of N machines (default 100, 1,000, 10,000) with 5 services × 2 instances; per
instance a `server` role with 2 named machines carrying machine settings and a `client` role
via tag `all` plus 2 tags with tag-level settings and role settings, so every machine is in all
10 instances. Each size runs in a fresh process (3 runs, median) that reports the time to load
+ resolve, the time to evaluate every machine's configuration, and its peak RSS.

    python benchmarks/eval_scale.py [--sizes 100 1000 10000] [--runs 3] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
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
                [sys.executable, __file__, "--child", str(root)], check=True, capture_output=True, text=True
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    med = {k: statistics.median(r[k] for r in results) for k in ("resolve", "evaluate", "rss_mib")}
    med["total"] = statistics.median(r["resolve"] + r["evaluate"] for r in results)
    med["files"] = results[0]["files"]
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--runs", type=int, default=3)
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
    if args.write:
        write_section(args.write, rows, args.runs)


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
