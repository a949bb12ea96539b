"""The complete example of docs/services.md, extracted from the page and run through the pipeline."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyclan.clan import Clan, open_clan

Isolated = Callable[..., subprocess.CompletedProcess[str]]
DOC = Path(__file__).resolve().parents[2] / "docs" / "services.md"


def _block(name: str) -> str:
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```[a-z]+\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"docs/services.md has no example block {name}"
    return match.group(1)


def _clan(root: Path, toml: str | None = None) -> Clan:
    (root / "services").mkdir(parents=True, exist_ok=True)
    (root / "services" / "greeter.py").write_text(_block("services/greeter.py"))
    (root / "clan.toml").write_text(toml or _block("clan.toml"))
    return open_clan(root, {})


def test_the_documented_example_evaluates(tmp_path: Path, generate_vars: Callable[..., Any],
                                          isolated: Isolated) -> None:
    clan = _clan(tmp_path / "clan")
    assert clan.resolved.to_json()["members"] == {"hello": {"client": ["laptop"], "server": ["web1", "web2"]}}
    assert clan.resolved.checks == []
    assert sorted(clan.evaluator.exports()) == ["greeter:hello:server:web1", "greeter:hello:server:web2"]
    made = generate_vars(clan)
    ids = {m: made.public[(m, "greeter-id", "id")].decode() for m in ("web1", "web2")}

    laptop = clan.evaluator.config("laptop")
    assert laptop.files["/etc/greeter/hello.urls"].content == "http://web1.clan:8080/\nhttp://web2.clan:9000/\n"
    assert laptop.files["/etc/greeter/hello.servers"].content.splitlines() == [
        f"web1 port=8080 id={ids['web1']}", f"web2 port=9000 id={ids['web2']}",
    ]
    assert "OnUnitActiveSec=5min" in laptop.units["greeter-check-hello.timer"].content
    assert not laptop.units["greeter-check-hello.service"].start
    assert laptop.files["/etc/greeter/roles"].content == "hello: client\n"

    # the server really serves its page with the unit's command, and the client's check reads it
    web2 = clan.evaluator.config("web2")
    exec_start = next(line.split("=", 1)[1] for line in web2.units["greeter-hello.service"].content.splitlines()
                      if line.startswith("ExecStart="))
    files = {path: spec.content.encode() for path, spec in web2.files.items()}
    files["/etc/greeter/hello.urls"] = b"http://127.0.0.1:9000/\n"
    script = (
        f"chmod -R a+rX /srv\n{exec_start} >/dev/null 2>&1 & pid=$!\n"
        "for i in $(seq 50); do curl -fsS http://127.0.0.1:9000/ >/dev/null 2>&1 && break; sleep 0.1; done\n"
        "xargs -r -n1 curl -fsS < /etc/greeter/hello.urls\nkill $pid\n"
    )
    done = isolated(script, files=files, net=True)
    assert done.stdout == f"Moin from web2 ({ids['web2']})\n"


def test_the_constraint_shows_as_a_check(tmp_path: Path) -> None:
    toml = _block("clan.toml").replace("roles.server.machines.web1 = {}\n", "").replace(
        "roles.server.machines.web2.settings = { port = 9000, message = \"Moin\" }\n", "")
    checks = [c.to_json() for c in _clan(tmp_path / "clan", toml).resolved.checks]
    assert checks == [{
        "id": "greeter-hello-server-minMachines",
        "message": "Role 'server' of service 'greeter' instance 'hello' requires at least 1 machine(s) "
                   "but 0 are assigned.",
        "severity": "error",
    }]
