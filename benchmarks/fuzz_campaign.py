"""Fuzz campaign: mutated and random inventories through load → resolve → evaluate → build.

Every case is a clan folder (clan.toml and/or inventory.json, maybe machines/<name>/ folders,
and for cases made from the quickstart its committed vars/ and keys/). A worker process opens it
as a command would, resolves it, evaluates every machine's configuration and builds every
machine's generation (in memory: no vars generation, no hosts). Each case runs under a time
limit (the worker is killed and replaced when it is over) and a memory limit (RLIMIT_AS on the
worker), and ends as one of:

    ok         the pipeline ran to the end
    clean      a ClanError whose problems all have a message and print (text and JSON)
    exception  any other exception, or a ClanError that cannot be shown: a bug
    hang       over the time limit
    blowup     over the memory limit (MemoryError, or the worker died)

Cases are made from a seed and their index (`fuzz_cases.py`: seeds and mutations), so
`--only N` replays case N exactly.

    python benchmarks/fuzz_campaign.py                 # 10,000 cases, one worker per core (max 2)
    python benchmarks/fuzz_campaign.py --cases 500 --workers 1
    python benchmarks/fuzz_campaign.py --only 1234 -v  # one case, with its files and traceback
    python benchmarks/fuzz_campaign.py --write         # also update BENCHMARKS.md

Failing cases are saved under --out (default: a temporary folder) to reproduce them.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # fuzz_cases, next to this file
from fuzz_cases import Case, load_seeds, make_case

ROOT = Path(__file__).resolve().parent.parent
OUTCOMES = ("ok", "clean", "exception", "hang", "blowup")
GIB = 1 << 30

# -- the worker -------------------------------------------------------------------------------


def _shows(err: Any) -> str | None:
    """Why a ClanError cannot be shown to a user (text and --json), or None."""
    if not err.problems:
        return "a ClanError without problems"
    for problem in err.problems:
        if not problem.message:
            return f"a problem without a message: {problem!r}"
        try:
            problem.render().encode("utf-8")
            json.dumps(problem.to_json(), ensure_ascii=False).encode("utf-8")
        except Exception as exc:
            return f"a problem that cannot be printed ({type(exc).__name__}: {exc}): {problem!r}"
    return None


def run_case(case: Case, work: Path) -> tuple[str, str]:
    """Write the case's clan and run the pipeline on it; (outcome, detail)."""
    import traceback

    from pyclan.build.generation import build
    from pyclan.clan import Clan
    from pyclan.errors import ClanError
    from pyclan.inventory.load import load_inventory

    clan_dir = work / f"case-{case.index}"
    shutil.rmtree(clan_dir, ignore_errors=True)
    clan_dir.mkdir(parents=True)
    try:
        if case.template:
            for part in ("vars", "keys"):
                if (Path(case.template) / part).is_dir():
                    shutil.copytree(Path(case.template) / part, clan_dir / part, copy_function=os.link)
        for rel, content in case.files.items():
            if rel.endswith("/"):
                (clan_dir / rel).mkdir(parents=True, exist_ok=True)
            else:
                (clan_dir / rel).write_bytes(content)
        stage = "load"
        try:
            clan = Clan(dir=clan_dir, loaded=load_inventory(clan_dir))
            stage = "resolve"
            json.dumps(clan.resolved.to_json())
            stage = "evaluate"
            configs = clan.evaluator.configs()
            stage = "build"
            for machine in sorted(configs):
                gen = build(clan, machine, write=False)
                gen.folder_files()
            return "ok", f"{len(configs)} machine(s)"
        except ClanError as err:
            bad = _shows(err)
            return ("exception", f"{stage}: {bad}") if bad else ("clean", f"{stage}: {err.problems[0].kind}")
        except MemoryError:
            return "blowup", "MemoryError"
        except Exception:
            return "exception", f"{stage}: {traceback.format_exc(limit=12)}"
    finally:
        shutil.rmtree(clan_dir, ignore_errors=True)


def worker_main(memory_limit: int) -> None:
    """Read cases (JSON lines) on stdin, answer results (JSON lines) on stdout."""
    import resource

    if memory_limit:
        resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    sys.setrecursionlimit(10_000)  # deep input must be refused by pyclan, not by the interpreter's default
    work = Path(tempfile.mkdtemp(prefix="pyclan-fuzz-"))
    os.environ["PYCLAN_CACHE_DIR"] = str(work / "cache")
    os.environ["PYCLAN_HOSTS_DIR"] = str(work / "no-hosts")
    os.environ["PYCLAN_AGE_KEY_FILE"] = str(work / "no-age-key")
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing a service prints can corrupt the answers
    try:
        for line in sys.stdin:
            case = Case.from_json(json.loads(line))
            start = time.perf_counter()
            try:
                outcome, detail = run_case(case, work)
            except MemoryError:
                outcome, detail = "blowup", "MemoryError"
            elapsed = time.perf_counter() - start
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            out.write(json.dumps({"index": case.index, "outcome": outcome, "detail": detail, "seconds": elapsed,
                                  "max_rss": rss}) + "\n")  # fmt: skip
            out.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the campaign -----------------------------------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    case: Case | None = None
    started: float = 0.0
    buffer: bytes = b""


@dataclass
class Report:
    cases: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    stages: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    bugs: list[dict[str, Any]] = field(default_factory=list)
    slowest: list[tuple[float, int]] = field(default_factory=list)
    max_rss: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases, "outcomes": {o: self.counts[o] for o in OUTCOMES}, "kinds": dict(self.kinds),
            "clean_error_kinds": dict(self.error_kinds.most_common()),
            "clean_errors_by_stage": dict(self.stages),
            "by_kind": {kind: dict(counts) for kind, counts in sorted(self.by_kind.items())}, "bugs": self.bugs,
            "slowest": [{"index": i, "seconds": round(s, 3)} for s, i in sorted(self.slowest, reverse=True)[:5]],
            "max_worker_rss_mib": round(self.max_rss / (1 << 20), 1), "seconds": round(self.seconds, 1),
        }  # fmt: skip


def _spawn(memory_limit: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "--memory-limit", str(memory_limit)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip


def _send(worker: Worker, case: Case) -> None:
    assert worker.proc.stdin is not None
    worker.case, worker.started, worker.buffer = case, time.monotonic(), b""
    worker.proc.stdin.write((json.dumps(case.to_json()) + "\n").encode())
    worker.proc.stdin.flush()


def _stop(worker: Worker) -> None:
    worker.proc.kill()
    worker.proc.wait()


def run_campaign(
    cases: int, workers: int = 1, master: int = 0, time_limit: float = 10.0, memory_limit: int = GIB,
    out: Path | None = None, only: list[int] | None = None, progress: bool = False,
) -> Report:  # fmt: skip
    """Run the cases (0..cases-1, or `only`) and count the outcomes; bugs are saved under `out`."""
    seeds = load_seeds()
    todo = list(only) if only is not None else list(range(cases))
    todo.reverse()
    report = Report()
    pool = [Worker(_spawn(memory_limit)) for _ in range(max(1, min(workers, len(todo))))]
    start = time.monotonic()

    def record(case: Case, outcome: str, detail: str, seconds: float) -> None:
        report.cases += 1
        report.counts[outcome] += 1
        report.kinds[case.kind] += 1
        report.slowest.append((seconds, case.index))
        report.slowest = sorted(report.slowest, reverse=True)[:5]
        where = detail.partition(": ")[0] if outcome == "clean" else outcome
        report.by_kind.setdefault(case.kind, Counter())[where] += 1
        if outcome == "clean":
            stage, _, kind = detail.partition(": ")
            report.error_kinds[kind] += 1
            report.stages[stage] += 1
        if outcome in ("exception", "hang", "blowup"):
            entry = {"index": case.index, "outcome": outcome, "kind": case.kind, "seed": case.seed,
                     "detail": detail.strip().splitlines()[-1][:300] if detail.strip() else outcome,
                     "traceback": detail}  # fmt: skip
            if out is not None:
                folder = out / f"case-{case.index}"
                folder.mkdir(parents=True, exist_ok=True)
                for rel, content in case.files.items():
                    if rel.endswith("/"):
                        (folder / rel).mkdir(parents=True, exist_ok=True)
                    else:
                        (folder / rel).write_bytes(content)
                (folder / "outcome.txt").write_text(f"{outcome}\n{detail}\n")
                entry["saved"] = str(folder)
            report.bugs.append(entry)
        if progress and report.cases % 500 == 0:
            rate = report.cases / (time.monotonic() - start)
            print(f"  {report.cases} cases, {rate:.1f}/s: {dict(report.counts)}", file=sys.stderr, flush=True)

    try:
        for worker in pool:
            if todo:
                _send(worker, make_case(todo.pop(), seeds, master))
        while any(w.case is not None for w in pool):
            busy = [w for w in pool if w.case is not None]
            now = time.monotonic()
            wait = max(0.01, min(w.started + time_limit - now for w in busy))
            streams = {w.proc.stdout.fileno(): w for w in busy if w.proc.stdout is not None}
            ready, _, _ = select.select(list(streams), [], [], wait)
            for fd in ready:
                worker = streams[fd]
                chunk = os.read(fd, 1 << 16)
                case = worker.case
                assert case is not None
                if not chunk:  # the worker died (killed by the kernel, a crash, or RLIMIT_AS in C code)
                    record(case, "blowup", f"the worker died (exit status {worker.proc.wait()})", 0.0)
                    worker.proc = _spawn(memory_limit)
                    worker.case = None
                else:
                    worker.buffer += chunk
                    if not worker.buffer.endswith(b"\n"):
                        continue
                    result = json.loads(worker.buffer)
                    report.max_rss = max(report.max_rss, int(result["max_rss"]))
                    record(case, result["outcome"], result["detail"], float(result["seconds"]))
                    worker.case = None
                if todo:
                    _send(worker, make_case(todo.pop(), seeds, master))
            now = time.monotonic()
            for worker in pool:
                if worker.case is not None and now - worker.started > time_limit:
                    record(worker.case, "hang", f"over {time_limit:.0f} s", now - worker.started)
                    _stop(worker)
                    worker.proc, worker.case = _spawn(memory_limit), None
                    if todo:
                        _send(worker, make_case(todo.pop(), seeds, master))
    finally:
        for worker in pool:
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()
            try:
                worker.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _stop(worker)
    report.seconds = time.monotonic() - start
    return report


def write_section(path: Path, summary: dict[str, Any], args: argparse.Namespace) -> None:
    """The campaign's section of BENCHMARKS.md, from a run's summary (`to_json`)."""
    outcomes = summary["outcomes"]
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(summary["kinds"].items()))
    stages = ", ".join(f"{k} {n:,}" for k, n in sorted(summary["clean_errors_by_stage"].items(), key=lambda i: -i[1]))
    top = ", ".join(f"{k} {n:,}" for k, n in list(summary["clean_error_kinds"].items())[:6])
    slow = max((s["seconds"] for s in summary["slowest"]), default=0.0)
    text = (
        f"{summary['cases']:,} mutated and random inventories (seed {args.seed}: {kinds}) through load → "
        f"resolve → evaluate → build, in {args.workers} worker process(es) on this shared 2-core machine, each "
        f"case limited to {args.time_limit:.0f} s and {args.memory_limit / GIB:.0f} GiB of address space. "
        f"Clean errors by stage: {stages}; by kind: {top}, …"
    )
    section = "\n".join([
        "<!-- fuzz_campaign -->",
        "## Fuzz campaign (`benchmarks/fuzz_campaign.py`)",
        "",
        textwrap.fill(text, 100),
        "",
        "| cases | ok | clean errors | exceptions | hangs (> 10 s) | blow-ups (> 1 GiB) | slowest case "
        "| peak worker RSS | total |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['cases']:,} | {outcomes['ok']:,} | {outcomes['clean']:,} | {outcomes['exception']} | "
        f"{outcomes['hang']} | {outcomes['blowup']} | {slow:.2f} s | {summary['max_worker_rss_mib']:.0f} MiB | "
        f"{summary['seconds'] / 60:.1f} min |",
        "<!-- /fuzz_campaign -->",
    ])  # fmt: skip
    old = path.read_text() if path.exists() else ""
    begin, end = "<!-- fuzz_campaign -->", "<!-- /fuzz_campaign -->"
    if begin in old and end in old:
        old = old[: old.index(begin)] + section + old[old.index(end) + len(end) :]
    else:
        old = old.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--memory-limit", type=int, default=GIB)
    parser.add_argument("--out", type=Path, default=None, help="where failing cases are saved")
    parser.add_argument("--only", type=int, nargs="*", help="run only these case numbers")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every bug's traceback")
    parser.add_argument("--write", action="store_true", help="update the section in BENCHMARKS.md")
    parser.add_argument("--write-from", type=Path, help="update BENCHMARKS.md from a saved summary (JSON)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.memory_limit)
        return
    if args.write_from:
        write_section(ROOT / "BENCHMARKS.md", json.loads(args.write_from.read_text()), args)
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="pyclan-fuzz-cases-"))
    report = run_campaign(
        args.cases, args.workers, args.seed, args.time_limit, args.memory_limit, out, args.only, progress=True
    )
    summary = report.to_json()
    for bug in summary["bugs"]:
        if not args.verbose:
            bug.pop("traceback", None)
    print(json.dumps(summary, indent=2))
    if args.verbose and args.only:
        seeds = load_seeds()
        for index in args.only:
            for rel, content in make_case(index, seeds, args.seed).files.items():
                print(f"--- case {index}: {rel}\n{content.decode('utf-8', 'replace')[:4000]}")
    if args.write:
        write_section(ROOT / "BENCHMARKS.md", report.to_json(), args)
    bad = sum(report.counts[o] for o in ("exception", "hang", "blowup"))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
