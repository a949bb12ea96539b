"""The Starlette application of `pyclan serve`: the registry under /api, tasks, the UI at /."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from pyclan import api
from pyclan.errors import Problem
from pyclan.serve.auth import TokenAuth
from pyclan.serve.calls import TASK_FUNCTIONS, Caller, http_status, is_write, mask, mask_arguments
from pyclan.serve.tasks import Tasks

STATIC = Path(__file__).parent / "static"
MAX_BODY = 4 * 1024 * 1024

# The UI loads nothing from elsewhere; json-editor sets inline styles.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return api.encode(content)


def _error(status: int, kind: str, path: str, message: str, hint: str | None = None) -> Response:
    return JSONBytes(api.error_envelope([Problem(kind, path, message, hint=hint)]), status_code=status)


async def _json_object(request: Request) -> dict[str, Any] | Response:
    """The request's JSON object body, or the error response to send instead."""
    if "application/json" not in request.headers.get("content-type", ""):
        why = "send the arguments as a JSON object (Content-Type: application/json)"
        return _error(415, "usage-error", "body", why)
    body = await request.body()
    if len(body) > MAX_BODY:
        return _error(413, "usage-error", "body", "the request body is too large")
    try:
        parsed = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        return _error(400, "parse-error", "body", f"invalid JSON: {exc}")
    if not isinstance(parsed, dict):
        return _error(400, "usage-error", "body", "expected a JSON object of arguments")
    return parsed


class SecurityHeaders:
    """Adds the headers above to every response (no CORS header is ever sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                         if k.lower().encode() not in present]  # fmt: skip
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)  # type: ignore[arg-type]


def create_app(clan_dir: Path, token: str) -> ASGIApp:
    """The whole server for the clan at `clan_dir`, behind the token."""
    clan_dir = clan_dir.resolve()
    caller = Caller(clan_dir)
    tasks = Tasks(clan_dir)
    described: list[dict[str, Any]] = []

    async def describe(request: Request) -> Response:
        if not described:
            functions = await run_in_threadpool(api.describe)
            for fn in functions:
                fn["task"] = fn["name"] in TASK_FUNCTIONS
                fn["write"] = is_write(fn["name"])
            described.extend(functions)
        return JSONBytes({"clan": str(clan_dir), "functions": described})

    async def call(request: Request) -> Response:
        name = request.path_params["name"]
        args = await _json_object(request)
        if isinstance(args, Response):
            return args
        envelope = await run_in_threadpool(caller.call, name, args)
        return JSONBytes(envelope, status_code=http_status(envelope))

    async def start_task(request: Request) -> Response:
        name = request.path_params["name"]
        args = await _json_object(request)
        if isinstance(args, Response):
            return args
        if name not in api.load_all():
            envelope = api.call(name, {})
            return JSONBytes(envelope, status_code=http_status(envelope))
        try:
            prepared = caller.prepare(name, args)
        except Exception as err:  # ClanError: another clan
            problems = getattr(err, "problems", [Problem("usage-error", name, str(err))])
            return JSONBytes(api.error_envelope(problems), status_code=400)
        task = await tasks.start(name, prepared)
        return JSONBytes(_masked_summary(task.summary()), status_code=202)

    def _task_or_404(request: Request) -> Any:
        task = tasks.get(request.path_params["id"])
        if task is None:
            return _error(404, "usage-error", "task", f"no task {request.path_params['id']!r}")
        return task

    async def list_tasks(request: Request) -> Response:
        return JSONBytes([_masked_summary(t) for t in tasks.list()])

    async def show_task(request: Request) -> Response:
        task = _task_or_404(request)
        return task if isinstance(task, Response) else JSONBytes(_masked_summary(task.summary()))

    async def cancel_task(request: Request) -> Response:
        task = _task_or_404(request)
        if isinstance(task, Response):
            return task
        await tasks.cancel(task)
        return JSONBytes(_masked_summary(task.summary()), status_code=202)

    async def task_events(request: Request) -> Response:
        task = _task_or_404(request)
        if isinstance(task, Response):
            return task

        async def stream() -> AsyncIterator[bytes]:
            async for event in task.follow():
                if event.get("type") == "result":
                    event = {**event, "envelope": mask(task.function, event["envelope"])}
                kind = str(event.get("type", "message")).encode()
                yield b"event: " + kind + b"\ndata: " + api.encode(event) + b"\n\n"
            yield b"event: end\ndata: {}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    def _masked_summary(summary: dict[str, Any]) -> dict[str, Any]:
        out = {**summary, "args": mask_arguments(summary["function"], summary["args"])}
        if summary.get("result"):
            out["result"] = mask(summary["function"], summary["result"])
        return out

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)

    async def not_found(request: Request) -> Response:
        return _error(404, "usage-error", request.url.path, "no such endpoint", hint="GET /api lists the functions")

    def warm_up() -> None:
        """Import the registry and load the clan once, so that the first page does not wait for it."""
        caller.call("list_machines", {})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warming = asyncio.get_running_loop().run_in_executor(None, warm_up)
        yield
        await tasks.shutdown()
        await warming

    routes = [
        Route("/", index),
        Route("/favicon.ico", no_icon),
        Route("/api", describe, methods=["GET"]),
        Route("/api/tasks", list_tasks, methods=["GET"]),
        Route("/api/tasks/{name}", start_task, methods=["POST"]),
        Route("/api/tasks/{id}", show_task, methods=["GET"]),
        Route("/api/tasks/{id}", cancel_task, methods=["DELETE"]),
        Route("/api/tasks/{id}/events", task_events, methods=["GET"]),
        Route("/api/{name}", call, methods=["POST"]),
        Route("/api/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.tasks = tasks
    app.state.caller = caller
    return SecurityHeaders(TokenAuth(app, token))


