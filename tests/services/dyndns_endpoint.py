"""A small dyndns endpoint for the dyndns tests: `python3 dyndns_endpoint.py ADDRESS PORT LOG`.

It answers `GET /nic/update?hostname=…&myip=…` with `good <ip>` (the dyndns2 protocol, ddclient) and
`POST /api/json/v3/dns/editByNameType/<domain>/<type>[/<subdomain>]` with Porkbun's `{"status": "SUCCESS"}`
when the body is JSON with `apikey`, `secretapikey` and `content` (pyclan's porkbun updater). It
appends one JSON line per request to LOG: the method, the path, the query, the HTTP basic-auth user
and password, and a POST's content type and JSON body. It prints its port once it listens (PORT 0:
any free port), so tests can wait for it.
"""

from __future__ import annotations

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PORKBUN_EDIT = "/api/json/v3/dns/editByNameType/"


def serve(address: str, port: int, log: Path) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            user = password = None
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            with log.open("a") as out:
                out.write(json.dumps({"method": "GET", "path": url.path, "query": query, "user": user,
                                      "password": password}) + "\n")
            if url.path != "/nic/update":
                self.send_response(404)
                self.end_headers()
                return
            body = f"good {query.get('myip', '')}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            with log.open("a") as out:
                out.write(json.dumps({"method": "POST", "path": self.path, "content_type":
                                      self.headers.get("Content-Type"), "json": body}) + "\n")
            fields_ok = isinstance(body, dict) and {"apikey", "secretapikey", "content"} <= set(body)
            if not self.path.startswith(PORKBUN_EDIT) or not fields_ok:
                self._json(400, {"status": "ERROR", "message": "expected editByNameType with apikey, secretapikey "
                                                               "and content"})
                return
            self._json(200, {"status": "SUCCESS"})

        def _json(self, code: int, answer: dict[str, str]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = HTTPServer((address, port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
