"""Run one coroutine per host on one event loop, at most `jobs` at a time.

A host's failure is its own: every exception becomes that host's report (a ClanError keeps its
message and hint; anything else is reported as an internal error), the other hosts go on. Each
host's result goes to the progress callback as soon as it is known.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyclan.deploy.changes import Changes
from pyclan.errors import ClanError

Progress = Callable[[str, str], None]  # (machine, what is happening now)


def no_progress(machine: str, status: str) -> None:
    """The default progress callback: report nothing."""


@dataclass
class HostReport:
    """The outcome for one machine; `to_json` has at least machine, changed, generation, error."""

    machine: str
    target: str | None = None
    changed: bool = False
    generation: int | None = None
    id: str | None = None
    error: str | None = None
    hint: str | None = None
    step: str | None = None  # the activation step that failed
    output: str | None = None  # what that step printed
    rolled_back_to: int | None = None
    changes: Changes | None = None  # --dry-run
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "machine": self.machine,
            "changed": self.changed,
            "generation": self.generation,
            "error": self.error,
            "id": self.id,
            "target": self.target,
            "seconds": round(self.seconds, 3),
        }
        for key in ("hint", "step", "output", "rolled_back_to"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.changes is not None:
            data["changes"] = self.changes.to_json()
        data.update(self.extra)
        return data


def final_status(report: HostReport) -> str:
    """The last progress status of a host: `failed: why`, `changed (generation N)` or `unchanged`."""
    if report.error and report.extra.get("attempted") is False:
        return report.error
    if report.error:
        return f"failed: {report.error}"
    if report.changed:
        return f"changed (generation {report.generation})" if report.generation is not None else "changed"
    return "unchanged"


def error_report(machine: str, exc: BaseException) -> HostReport:
    if isinstance(exc, ClanError):
        first = exc.problems[0]
        message = "; ".join(p.message for p in exc.problems)
        return HostReport(machine, error=message, hint=first.hint)
    return HostReport(machine, error=f"internal error: {type(exc).__name__}: {exc}",
                      hint="run with --debug for a traceback")


async def run_hosts(
    machines: Sequence[str],
    work: Callable[[str, Progress], Awaitable[HostReport]],
    jobs: int,
    progress: Progress = no_progress,
    debug: bool = False,
) -> list[HostReport]:
    """`work(machine, progress)` for every machine, in parallel; reports in `machines` order."""
    limit = asyncio.Semaphore(max(1, jobs))

    async def one(machine: str) -> HostReport:
        async with limit:
            start = time.monotonic()
            try:
                report = await work(machine, progress)
            except Exception as exc:
                if debug and not isinstance(exc, ClanError):
                    raise
                report = error_report(machine, exc)
            report.seconds = time.monotonic() - start
            progress(machine, final_status(report))
            return report

    return list(await asyncio.gather(*(one(m) for m in machines)))


def plan_batches(machines: Sequence[str], canary: int = 0, batch_size: int | None = None) -> list[list[str]]:
    """Canaries (the first `canary` machines) alone first, then batches of `batch_size` (default: the rest)."""
    first, rest = list(machines[:canary]), list(machines[canary:])
    size = batch_size or len(rest) or 1
    return ([first] if first else []) + [rest[i : i + size] for i in range(0, len(rest), size)]


def not_attempted(machine: str, failed: Sequence[str], max_failures: int) -> HostReport:
    names = ", ".join(failed[:5]) + (", …" if len(failed) > 5 else "")
    report = HostReport(machine, error=f"not attempted: {len(failed)} host(s) failed before its batch ({names}) "
                                       f"and --max-failures is {max_failures}",
                        hint="fix the failed hosts, then run the update again")
    report.extra["attempted"] = False
    return report


async def run_batches(
    batches: Sequence[Sequence[str]],
    work: Callable[[str, Progress], Awaitable[HostReport]],
    jobs: int,
    progress: Progress = no_progress,
    debug: bool = False,
    max_failures: int | None = None,
) -> list[HostReport]:
    """Batch after batch; a new batch starts only while fewer than `max_failures` hosts failed."""
    reports: dict[str, HostReport] = {}
    failed: list[str] = []
    for batch in batches:
        if max_failures is not None and len(failed) >= max_failures:
            for m in batch:
                reports[m] = not_attempted(m, failed, max_failures)
                progress(m, final_status(reports[m]))
            continue
        for report in await run_hosts(batch, work, jobs, progress, debug):
            reports[report.machine] = report
            if report.error:
                failed.append(report.machine)
    return [reports[m] for batch in batches for m in batch]
