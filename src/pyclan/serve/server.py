"""Run the app with uvicorn: bind (loopback by default), make the token, print the URL."""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import sys
from pathlib import Path

from pyclan.errors import ClanError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: any free port), or a ClanError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ClanError.single("usage-error", "--host", f"cannot resolve {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = "choose another --port (0 picks a free one)" if exc.errno == 98 else None
        raise ClanError.single("usage-error", "--port", f"cannot listen on {host}:{port}: {exc.strerror}",
                               hint=hint) from None  # fmt: skip
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def serve(clan_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, as_json: bool = False) -> None:
    """Serve the clan at `clan_dir` until interrupted."""
    import uvicorn

    from pyclan.serve.app import create_app

    token = secrets.token_urlsafe(32)
    sock = bind(host, port)
    actual_port = sock.getsockname()[1]
    if not is_loopback(host):
        print(
            f"warning: serving on {host}, reachable from the network. Anyone with the token can change and "
            "deploy this clan, and plain HTTP does not hide the token on the way: prefer the default "
            "127.0.0.1 and `ssh -L` port forwarding.",
            file=sys.stderr, flush=True,
        )  # fmt: skip
    shown = url(DEFAULT_HOST if host in ("0.0.0.0", "::") else host, actual_port, token)
    if as_json:
        info = {"clan": str(clan_dir), "url": shown, "host": host, "port": actual_port}
        print(json.dumps(info), flush=True)
    else:
        print(f"pyclan serve: clan {clan_dir}\n    {shown}", flush=True)
        print("Open the URL above (it carries the token); Ctrl-C stops the server.", flush=True)
    config = uvicorn.Config(
        create_app(clan_dir, token), log_level="warning", access_log=False, timeout_graceful_shutdown=3,
        server_header=False,
    )  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])
