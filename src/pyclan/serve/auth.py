"""The token every request needs (like Jupyter's): bearer header, or a cookie set from `?token=`.

Without a token a request is refused with 401, with a wrong one with 403; tokens are compared
in constant time. Opening `/?token=…` once sets an HttpOnly, SameSite=Strict cookie and
redirects to the same page without the token, so it leaves the address bar and history.
The cookie's name carries the port: two servers on one host do not overwrite each other's.
"""

from __future__ import annotations

import hmac
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pyclan.errors import Problem


def cookie_name(port: int) -> str:
    return f"pyclan-token-{port}"


class TokenAuth:
    """ASGI middleware: nothing reaches the app without the right token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none are served; refused before any app sees one
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        port = (scope.get("server") or ("", 0))[1] or 0
        query = dict(parse_qsl(scope.get("query_string", b"").decode(errors="replace")))
        if "token" in query and scope["method"] == "GET":
            if self._matches(query["token"]):
                await self._set_cookie_and_redirect(scope, query, port)(scope, receive, send)
            else:
                await _refusal(403, "wrong token")(scope, receive, send)
            return
        given = self._given(scope, port)
        if given is None:
            await _refusal(401, "this server needs its token")(scope, receive, send)
        elif not self._matches(given):
            await _refusal(403, "wrong token")(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token)

    def _given(self, scope: Scope, port: int) -> str | None:
        headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode(errors="replace")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get(b"cookie", b"").decode(errors="replace"))
        except Exception:  # a malformed cookie header: as if there were none
            return None
        morsel = cookies.get(cookie_name(port))
        return str(morsel.value) if morsel is not None else None

    def _set_cookie_and_redirect(self, scope: Scope, query: dict[str, str], port: int) -> Response:
        rest = {k: v for k, v in query.items() if k != "token"}
        target = scope.get("path", "/") + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(cookie_name(port), self.token.decode(), httponly=True, samesite="strict", path="/")
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _refusal(status: int, message: str) -> Response:
    hint = "open the URL `pyclan serve` printed (with ?token=…), or send `Authorization: Bearer <token>`"
    problem = Problem("usage-error", "token", message, hint=hint)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse({"status": "error", "errors": [problem.to_json()]}, status_code=status, headers=headers)
