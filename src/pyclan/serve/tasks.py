"""Long API calls as tasks: each one a `pyclan.serve.worker` process, its events kept for replay.

A task's events are what its subscribers (SSE streams) see: the state changes, progress per
host, log lines and the result envelope. Cancelling sends SIGINT (the call's cleanup runs, as
after Ctrl-C at the CLI) and SIGKILL if the process is still there after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

CANCEL_GRACE = 10.0  # seconds between SIGINT and SIGKILL
KEEP_FINISHED = 200  # finished tasks kept for `GET /api/tasks`
LINE_LIMIT = 256 * 1024 * 1024  # one protocol line: a result (a check of 10,000 machines is large)
STATES_DONE = ("succeeded", "failed", "cancelled")


@dataclass
class Task:
    """One call running (or run) in its own process."""

    id: str
    function: str
    args: dict[str, Any]
    state: str = "running"
    started: float = field(default_factory=time.time)
    finished: float | None = None
    result: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)  # machine → its latest status
    process: asyncio.subprocess.Process | None = None
    cancel_requested: bool = False
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id, "function": self.function, "args": self.args, "state": self.state,
            "started": self.started, "finished": self.finished, "hosts": dict(self.hosts), "result": self.result,
        }  # fmt: skip

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event.get("type") == "progress":
            self.hosts[str(event.get("machine"))] = str(event.get("status"))
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def follow(self) -> AsyncIterator[dict[str, Any]]:
        """Every event from the first, then live ones until the task is done."""
        seen = 0
        while True:
            while seen < len(self.events):
                seen += 1
                yield self.events[seen - 1]
            if self.state in STATES_DONE:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter


class Tasks:
    """The server's tasks; all methods run on the server's event loop."""

    def __init__(self, clan_dir: Path) -> None:
        self.clan_dir = clan_dir
        self.tasks: dict[str, Task] = {}

    def list(self) -> list[dict[str, Any]]:
        return [t.summary() for t in sorted(self.tasks.values(), key=lambda t: t.started, reverse=True)]

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(task_id)

    async def start(self, function: str, args: dict[str, Any]) -> Task:
        task = Task(id=secrets.token_hex(8), function=function, args=args)
        self.tasks[task.id] = task
        self._forget_old()
        task.emit({"type": "state", "state": "running"})
        task.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pyclan.serve.worker", function,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=LINE_LIMIT, cwd=self.clan_dir, start_new_session=True,
            env={**os.environ, "CLAN_DIR": str(self.clan_dir)},
        )  # fmt: skip
        assert task.process.stdin is not None
        task.process.stdin.write(orjson.dumps(args))
        task.process.stdin.close()
        asyncio.get_running_loop().create_task(self._watch(task))
        return task

    async def _watch(self, task: Task) -> None:
        proc = task.process
        assert proc is not None and proc.stdout is not None and proc.stderr is not None

        async def read_stderr() -> None:
            assert proc.stderr is not None
            async for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                if line:
                    task.emit({"type": "log", "line": line})

        stderr_reader = asyncio.get_running_loop().create_task(read_stderr())
        try:
            async for raw in proc.stdout:
                try:
                    event = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if event.get("type") == "result":
                    task.result = event.get("envelope")
                else:
                    task.emit(event)
        except (ValueError, OSError) as exc:  # an unreadable stream: the task fails, it never hangs
            from pyclan import api
            from pyclan.errors import Problem

            task.result = api.error_envelope([Problem("internal-error", task.function, f"task output: {exc}")])
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        await stderr_reader
        if task.cancel_requested:
            task.state = "cancelled"
        elif task.result is not None and task.result.get("status") == "success":
            task.state = "succeeded"
        else:
            task.state = "failed"
        if task.result is None:
            from pyclan import api
            from pyclan.errors import Problem

            if task.cancel_requested:
                problem = Problem("usage-error", task.function, "the task was cancelled")
            else:
                problem = Problem("internal-error", task.function, f"the task's process ended with {proc.returncode}")
            task.result = api.error_envelope([problem])
        task.finished = time.time()
        task.emit({"type": "result", "envelope": task.result})
        task.emit({"type": "state", "state": task.state})

    async def cancel(self, task: Task) -> None:
        """SIGINT to the task's process group, SIGKILL after the grace period."""
        if task.state in STATES_DONE or task.process is None:
            return
        task.cancel_requested = True
        task.emit({"type": "log", "line": "cancelling…"})
        with contextlib.suppress(ProcessLookupError):
            os.killpg(task.process.pid, signal.SIGINT)

        async def kill_later(proc: asyncio.subprocess.Process) -> None:
            try:
                await asyncio.wait_for(proc.wait(), CANCEL_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

        asyncio.get_running_loop().create_task(kill_later(task.process))

    async def shutdown(self) -> None:
        for task in list(self.tasks.values()):
            await self.cancel(task)

    def _forget_old(self) -> None:
        done = sorted((t for t in self.tasks.values() if t.state in STATES_DONE), key=lambda t: t.started)
        for t in done[: max(0, len(done) - KEEP_FINISHED)]:
            del self.tasks[t.id]
