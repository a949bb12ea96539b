"""Start-up: what every `pyclan` command pays before doing its work.

Runs `pyclan --help`, `pyclan check` and `pyclan inventory resolve --json` on the quickstart
(`examples/quickstart`) as users do (a new process each, bytecode cached), N times each,
interleaved, and reports the median CPU time (user + system) and wall time; then, per command,
the 10 imported modules that cost the most (`python -X importtime`, each module's own time).
Targets: `--help` ≤ 80 ms CPU; `check` and `resolve` on the quickstart ≤ 200 ms wall (idle machine).

    python benchmarks/startup.py [--runs 10] [--write BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart"
COMMANDS: dict[str, list[str]] = {
    "pyclan --help": ["--help"],
    "pyclan check": ["check"],
    "pyclan inventory resolve --json": ["inventory", "resolve", "--json"],
}
TARGETS = {"pyclan --help": ("cpu", 0.080), "pyclan check": ("wall", 0.200),
           "pyclan inventory resolve --json": ("wall", 0.200)}  # fmt: skip
ENTRY = "from pyclan.cli.launch import run; run()"


def pyclan_argv() -> list[str]:
    exe = Path(sys.executable).with_name("pyclan")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", ENTRY]


def child_env() -> dict[str, str]:
    """As users run pyclan: with bytecode caches (written by the warm-up run), on the quickstart."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "CLAN_DIR": str(QUICKSTART)}


def run_once(args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one command in a new process."""
    env = child_env()
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen([*pyclan_argv(), *args], stdout=null, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        err = proc.stderr.read() if proc.stderr else b""
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"pyclan {' '.join(args)} failed: {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def import_top(args: list[str], count: int = 10) -> list[tuple[str, int]]:
    """The modules a command imports that cost the most (own import time, µs), most costly first."""
    env = child_env()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY, *args], capture_output=True, text=True, env=env, check=True
    )
    top: list[tuple[str, int]] = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        head, _, name = line.split("|")
        own = head.removeprefix("import time:").strip()
        if own.isdigit():
            top.append((name.strip(), int(own)))
    return sorted(top, key=lambda t: -t[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--write", type=Path, help="update the startup section of this Markdown file")
    args = parser.parse_args()
    for argv in COMMANDS.values():
        run_once(argv)  # bytecode caches
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            samples[name].append(run_once(argv))
    results = {
        name: (statistics.median(s[0] for s in got), statistics.median(s[1] for s in got))
        for name, got in samples.items()
    }
    tops = {name: import_top(argv) for name, argv in COMMANDS.items()}
    for name, (wall, cpu) in results.items():
        print(f"{name:<34} CPU {cpu * 1000:6.0f} ms   wall {wall * 1000:6.0f} ms")
        for module, us in tops[name]:
            print(f"    {us / 1000:7.1f} ms  {module}")
    if args.write:
        write_section(args.write, results, tops, args.runs)


def write_section(
    path: Path, results: dict[str, tuple[float, float]], tops: dict[str, list[tuple[str, int]]], runs: int
) -> None:
    lines = [
        "<!-- startup -->",
        "## Start-up (`benchmarks/startup.py`)",
        "",
        f"A new process per command, on `examples/quickstart`; median of {runs} runs, interleaved, on this",
        "2-core machine shared with other jobs (wall time suffers most from that; CPU time less).",
        "",
        "| command | CPU | wall | target |",
        "|---|---:|---:|---:|",
    ]
    for name, (wall, cpu) in results.items():
        kind, limit = TARGETS[name]
        lines.append(f"| `{name}` | {cpu * 1000:.0f} ms | {wall * 1000:.0f} ms | {kind} ≤ {limit * 1000:.0f} ms |")
    lines += ["", "The 10 costliest imported modules of each (`python -X importtime`, own time of each module):", ""]
    for name, top in tops.items():
        lines.append(f"- `{name}`: " + ", ".join(f"{m} {us / 1000:.0f} ms" for m, us in top))
    lines.append("<!-- /startup -->")
    section = "\n".join(lines)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start, end = text.find("<!-- startup -->"), text.find("<!-- /startup -->")
    if start != -1 and end != -1:
        text = text[:start] + section + text[end + len("<!-- /startup -->") :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
