"""A task's process: one API call whose progress goes to stdout as JSON lines.

Tasks run in their own process so that cancelling one is a signal (SIGINT, as Ctrl-C at the
CLI: the call's own cleanup runs), and so that the clan's flock separates a running task from
the server's own writes. Protocol, one JSON object per line on the original stdout:
`{"type": "progress", "machine": …, "status": …}`, `{"type": "log", "line": …}`, and last
`{"type": "result", "envelope": {…}}` (what `pyclan.api.call` returns). Anything else the call
prints goes to stderr, which the server shows as log lines.
"""

from __future__ import annotations

import os
import sys
import threading
import typing
from collections.abc import Callable
from typing import IO, Any

from pyclan import api
from pyclan.errors import Problem


class _Channel:
    """The protocol stream; progress callbacks may run in several threads (parallel deploys)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.lock = threading.Lock()

    def send(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(api.encode(event) + b"\n")
            self.out.flush()


def _progress_callback(fn: Any, channel: _Channel) -> Callable[..., None] | None:
    """A `progress` argument fitting the function: `(machine, status)` for deploys, `(line)` for backups."""
    hint = typing.get_type_hints(fn).get("progress")
    if hint is None:
        return None
    callable_type = next((a for a in typing.get_args(hint) if typing.get_args(a)), hint)  # Progress | None
    params = typing.get_args(callable_type)[0] if typing.get_args(callable_type) else []
    if len(params) == 1:
        return lambda line: channel.send({"type": "log", "line": str(line)})
    return lambda machine, status: channel.send({"type": "progress", "machine": machine, "status": status})


def run(name: str, args: dict[str, Any], channel: _Channel) -> dict[str, Any]:
    """Call `name` like `pyclan.api.call`, with a progress callback when it takes one."""
    fn = api.load_all().get(name)
    progress = _progress_callback(fn, channel) if fn is not None else None
    return api.call(name, args, {"progress": progress} if progress is not None else None)


def main() -> None:
    """`python -m pyclan.serve.worker NAME` with the JSON arguments on stdin."""
    import orjson

    name = sys.argv[1]
    args = orjson.loads(sys.stdin.buffer.read() or b"{}")
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints of the call go to stderr, not into the protocol
    channel = _Channel(out)
    try:
        envelope = run(name, args, channel)
    except KeyboardInterrupt:
        envelope = api.error_envelope([Problem("usage-error", name, "the task was cancelled")])
    except Exception as exc:  # an internal error: reported like the CLI does, never a bare traceback
        hint = "run the same call with `pyclan --debug api call` for a traceback"
        envelope = api.error_envelope([Problem("internal-error", name, f"{type(exc).__name__}: {exc}", hint=hint)])
    channel.send({"type": "result", "envelope": envelope})


if __name__ == "__main__":
    main()
