"""`pyclan serve` over HTTP without a browser: the token, the registry, secrets, tasks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyclan.serve.app import create_app
from pyclan.serve.auth import cookie_name
from tests.serve.conftest import TOKEN

# -- the token ---------------------------------------------------------------------------------


@pytest.fixture
def anonymous(clan_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(clan_dir, TOKEN), base_url="http://127.0.0.1:8765", follow_redirects=False) as c:
        yield c


@pytest.mark.parametrize("method,path", [("GET", "/"), ("GET", "/api"), ("POST", "/api/list_machines"),
                                         ("GET", "/static/app.js"), ("GET", "/api/tasks"), ("GET", "/nowhere")])
def test_request_without_token_is_refused_with_401(anonymous: TestClient, method: str, path: str) -> None:
    response = anonymous.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["errors"][0]["message"] == "this server needs its token"


def test_request_with_wrong_token_is_refused_with_403(anonymous: TestClient) -> None:
    assert anonymous.get("/api", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert anonymous.get("/api", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 403
    anonymous.cookies.set(cookie_name(8765), "nope")
    assert anonymous.get("/api").status_code == 403
    assert anonymous.get("/?token=nope").status_code == 403


def test_token_in_url_sets_a_strict_httponly_cookie_and_leaves_the_url(anonymous: TestClient) -> None:
    response = anonymous.get(f"/?token={TOKEN}")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{cookie_name(8765)}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    anonymous.cookies.set(cookie_name(8765), TOKEN)
    page = anonymous.get("/")
    assert page.status_code == 200 and "<title>pyclan</title>" in page.text
    assert anonymous.get("/static/vendor/jsoneditor.js").status_code == 200


def test_bearer_token_is_accepted(anonymous: TestClient) -> None:
    response = anonymous.get("/api", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200


def test_no_cors_headers_even_for_a_foreign_origin(client: TestClient) -> None:
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    for response in (client.options("/api/list_machines", headers=headers),
                     client.post("/api/list_machines", json={}, headers={"Origin": "http://evil.example"})):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert "default-src 'self'" in client.get("/").headers["content-security-policy"]


def test_a_form_post_is_refused_without_json(client: TestClient) -> None:
    """A cross-site form cannot send application/json: such posts are refused before any call."""
    response = client.post("/api/delete_machine", data={"name": "sally-laptop"})
    assert response.status_code == 415


# -- the registry ------------------------------------------------------------------------------


def test_every_registry_function_is_listed_with_schemas(client: TestClient) -> None:
    from pyclan import api

    listed = {f["name"]: f for f in client.get("/api").json()["functions"]}
    assert set(listed) == set(api.load_all())
    for fn in listed.values():
        assert fn["parameters"]["type"] == "object" and "result" in fn
    assert listed["update_machines"]["task"] and listed["update_machines"]["write"]
    assert not listed["list_machines"]["write"]


def test_every_registry_function_is_reachable(client: TestClient) -> None:
    """Each function is routed to the registry: an unknown argument is refused by its own
    signature (nothing runs, so probing deploys or host starts is safe)."""
    for fn in client.get("/api").json()["functions"]:
        response = client.post(f"/api/{fn['name']}", json={"not_a_parameter": 1})
        assert response.status_code == 400, fn["name"]
        problem = response.json()["errors"][0]
        assert problem["path"] == fn["name"] and "argument" in problem["message"], fn["name"]


def test_unknown_function_is_404_with_a_suggestion(client: TestClient) -> None:
    response = client.post("/api/list_machine", json={})
    assert response.status_code == 404
    assert "list_machines" in response.json()["errors"][0]["hint"]


def test_reads_return_the_same_envelope_as_api_call(client: TestClient, clan_dir: Path) -> None:
    from pyclan import api

    response = client.post("/api/list_machines", json={})
    assert response.status_code == 200
    assert response.json() == api.call("list_machines", {"flake": str(clan_dir)})
    config = client.post("/api/get_machine_config", json={"machine": "sally-laptop"}).json()
    assert config["status"] == "success"


def test_user_error_is_4xx_with_the_problems(client: TestClient) -> None:
    response = client.post("/api/get_machine_config", json={"machine": "sally-laptopp"})
    assert response.status_code == 422
    problem = response.json()["errors"][0]
    assert problem["kind"] == "unknown-machine" and "sally-laptop" in problem.get("hint", "")


def test_another_clan_than_the_servers_is_refused(client: TestClient, tmp_path: Path) -> None:
    response = client.post("/api/list_machines", json={"flake": str(tmp_path)})
    assert response.status_code == 400
    assert "this server serves" in response.json()["errors"][0]["message"]


def test_a_write_while_the_clan_is_locked_is_refused_not_waited_for(client: TestClient, clan_dir: Path) -> None:
    import subprocess
    import sys

    before = (clan_dir / "clan.toml").read_bytes()
    code = ("import sys, time; from pathlib import Path; from pyclan.lock import clan_lock\n"
            "with clan_lock(Path(sys.argv[1]), 'test holder'):\n print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(clan_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        response = client.post("/api/create_machine", json={"name": "new-one"})
        assert response.status_code == 409
        assert "test holder" in response.json()["errors"][0]["message"]
    finally:
        holder.kill()
        holder.wait()
    assert (clan_dir / "clan.toml").read_bytes() == before
    assert client.post("/api/create_machine", json={"name": "new-one"}).status_code == 200


# -- secrets -----------------------------------------------------------------------------------


def test_secret_values_are_masked_except_by_get_var(client: TestClient) -> None:
    listed = client.post("/api/list_vars", json={"machine": "sally-laptop"}).json()["data"]
    secrets = [v for v in listed if v["secret"]]
    public = [v for v in listed if not v["secret"] and v["set"]]
    assert secrets and public
    assert all(v["value"] == "<secret>" for v in secrets)
    assert all(v["value"] not in (None, "<secret>") for v in public)
    wanted = {"machine": "sally-laptop", "var_id": "user-password-sally/user-password"}
    revealed = client.post("/api/get_var", json=wanted)
    plaintext = revealed.json()["data"]["value"]
    assert plaintext and plaintext != "<secret>"
    for name, args in [("list_vars", {"machine": "sally-laptop"}), ("get_machine_config", {"machine": "sally-laptop"}),
                       ("resolve_inventory", {}), ("check_vars", {})]:
        assert plaintext not in client.post(f"/api/{name}", json=args).text, name


# -- tasks -------------------------------------------------------------------------------------


def _events(client: TestClient, task_id: str, until: str | None = None) -> list[dict[str, Any]]:
    """The task's SSE stream, read until its end (or until an event of type `until`)."""
    out: list[dict[str, Any]] = []
    with client.stream("GET", f"/api/tasks/{task_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                out.append(event)
                if event.get("type") == until:
                    break
            if line == "event: end":
                break
    return out


def test_check_runs_as_a_task_with_its_result_streamed(client: TestClient) -> None:
    started = client.post("/api/tasks/check_clan", json={})
    assert started.status_code == 202
    events = _events(client, started.json()["id"])
    result = next(e for e in events if e["type"] == "result")["envelope"]
    assert result["status"] == "success" and result["data"]["ok"] is True
    assert events[-1] == {"type": "state", "state": "succeeded"}
    listed = client.get("/api/tasks").json()
    assert [t["state"] for t in listed if t["id"] == started.json()["id"]] == ["succeeded"]


def test_update_task_streams_per_host_progress_and_can_be_cancelled(client: TestClient, silent_ssh_port: int) -> None:
    args = {"machines": ["sally-laptop"], "options": {"target_host": f"root@127.0.0.1:{silent_ssh_port}",
            "host_key_check": "none", "connect_timeout": 300, "yes": True}}
    started = client.post("/api/tasks/update_machines", json=args)
    assert started.status_code == 202
    task_id = started.json()["id"]
    first = _events(client, task_id, until="progress")
    assert first[-1]["machine"] == "sally-laptop"  # live, while the host still does not answer
    running = [t for t in client.get("/api/tasks").json() if t["id"] == task_id]
    assert running[0]["state"] == "running" and "sally-laptop" in running[0]["hosts"]
    assert client.delete(f"/api/tasks/{task_id}").status_code == 202
    events = _events(client, task_id)
    assert {"type": "state", "state": "cancelled"} in events
    assert client.get(f"/api/tasks/{task_id}").json()["state"] == "cancelled"


def test_unknown_task_is_404(client: TestClient) -> None:
    assert client.get("/api/tasks/nope").status_code == 404
    assert client.delete("/api/tasks/nope").status_code == 404
    assert client.post("/api/tasks/no_such_function", json={}).status_code == 404


def test_a_task_result_larger_than_a_stream_buffer_arrives_whole(client: TestClient, clan_dir: Path) -> None:
    machines = "".join(f'[machines.m{i:04d}]\ntags = ["fleet"]\n' for i in range(400))
    sshd = '[instances.sshd]\nroles.server.tags = ["all"]\n'
    (clan_dir / "clan.toml").write_text('[meta]\nname = "big"\n' + machines + sshd)
    started = client.post("/api/tasks/resolve_inventory", json={})
    events = _events(client, started.json()["id"])
    result = next(e for e in events if e["type"] == "result")["envelope"]
    assert result["status"] == "success", result
    assert len(result["data"]["machines"]) == 400
    assert len(json.dumps(result)) > 64 * 1024


# -- binding -----------------------------------------------------------------------------------


def test_only_loopback_addresses_count_as_loopback() -> None:
    from pyclan.serve.server import is_loopback

    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "example.org"))


def test_serve_binds_loopback_by_default_and_warns_for_other_hosts(clan_dir: Path) -> None:
    import subprocess
    import sys

    def first_lines(*extra: str, lines: int = 2) -> tuple[str, str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from pyclan.cli.main import run; run()", "serve", "-C", str(clan_dir),
             "--port", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None and proc.stderr is not None
            out = "".join(proc.stdout.readline() for _ in range(lines))
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
        return out, err

    out, err = first_lines()
    assert "http://127.0.0.1:" in out and "?token=" in out and "warning" not in err
    out, err = first_lines("--host", "0.0.0.0")
    assert "?token=" in out and "warning: serving on 0.0.0.0, reachable from the network" in err
    out, _ = first_lines("--json", lines=1)
    info = json.loads(out.splitlines()[0])
    assert info["host"] == "127.0.0.1" and info["url"].startswith(f"http://127.0.0.1:{info['port']}/?token=")


# -- writes ------------------------------------------------------------------------------------


def test_refused_and_stale_writes_over_http_change_nothing(client: TestClient, clan_dir: Path) -> None:
    toml = clan_dir / "clan.toml"
    read = client.post("/api/get_inventory_state", json={}).json()["data"]["hash"]
    created = client.post("/api/create_instance", json={"name": "hi-2", "module": "hello-world", "expected_hash": read})
    assert created.status_code == 200, created.text
    before = toml.read_bytes()
    invalid = {"instance": "hi-2", "role": "morning", "path": "greeting", "value": 42}
    refused = client.post("/api/set_setting", json=invalid)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["path"] == "instances.hi-2.roles.morning.settings.greeting"
    assert toml.read_bytes() == before
    stale = client.post("/api/set_setting", json={**invalid, "value": "Hello", "expected_hash": read})
    assert stale.status_code == 409
    assert stale.json()["errors"][0]["kind"] == "inventory-changed"
    assert toml.read_bytes() == before


def test_task_progress_fits_each_functions_callback() -> None:
    """Deploys report `(machine, status)`, backups `(line)`: a task gives each the right one."""
    from pyclan import api
    from pyclan.serve.worker import _Channel, _progress_callback

    class Sink:
        def __init__(self) -> None:
            self.data = b""

        def write(self, raw: bytes) -> None:
            self.data += raw

        def flush(self) -> None:
            pass

    sink = Sink()
    channel = _Channel(sink)  # type: ignore[arg-type]
    registry = api.load_all()
    deploy = _progress_callback(registry["update_machines"], channel)
    backup = _progress_callback(registry["create_backup"], channel)
    assert deploy is not None and backup is not None
    assert _progress_callback(registry["list_machines"], channel) is None
    deploy("m1", "uploading")
    backup("borgbackup: done")
    lines = [json.loads(line) for line in sink.data.splitlines()]
    assert lines == [{"type": "progress", "machine": "m1", "status": "uploading"},
                     {"type": "log", "line": "borgbackup: done"}]


def test_websockets_are_refused(anonymous: TestClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect), anonymous.websocket_connect("/api/tasks"):
        pass


def test_a_secret_given_to_a_task_is_not_listed_back(client: TestClient) -> None:
    args = {"machine": "sally-laptop", "var_id": "user-password-sally/user-password", "value": "hunter2-secret"}
    started = client.post("/api/tasks/set_var", json=args)
    assert started.status_code == 202
    _events(client, started.json()["id"])
    for text in (started.text, client.get("/api/tasks").text, client.get(f"/api/tasks/{started.json()['id']}").text):
        assert "hunter2-secret" not in text
