"""Health checks, reload declarations and the magic-rollback protocol, without hosts."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from pyclan.build import activation
from pyclan.build.generation import generation_of
from pyclan.build.layout import HOST_ROOT
from pyclan.config.machine_config import MachineConfig, Origin
from pyclan.config.merge import merge_fragments
from pyclan.deploy import remote
from pyclan.deploy.confirm import activation_report
from pyclan.deploy.progress import ProgressView
from pyclan.deploy.runner import HostReport, final_status
from pyclan.deploy.transport import Target
from pyclan.errors import ClanError


def test_a_check_tests_exactly_one_thing() -> None:
    with pytest.raises(ValueError, match="exactly one thing"):
        MachineConfig().check("x", tcp=22, unit="ssh.service")
    with pytest.raises(ValueError, match="exactly one thing"):
        MachineConfig().check("x")
    c = MachineConfig().check("ssh", tcp=22, timeout=3)
    assert (c.checks["ssh"].kind, c.checks["ssh"].target, c.checks["ssh"].timeout) == ("tcp", "22", 3)
    assert not c.is_empty()


def test_bad_check_targets_are_reported_with_their_path() -> None:
    c = (MachineConfig().check("port", tcp=70000).check("unit", unit="no unit").check("url", http="ftp://x")
         .check("ok", command="true"))
    with pytest.raises(ClanError) as err:
        generation_of("m", c, {})
    where = {p.path: p.message for p in err.value.problems}
    assert set(where) == {"machines.m.checks.port", "machines.m.checks.unit", "machines.m.checks.url"}
    assert "1 to 65535" in where["machines.m.checks.port"] and "http://" in where["machines.m.checks.url"]


def test_checks_run_last_in_name_order_and_are_quoted() -> None:
    c = MachineConfig().check("b-cmd", command="echo 'it; works' && exit 0").check("a-unit", unit="x.service")
    gen = generation_of("m", c, {})
    assert [ch.name for ch in gen.manifest.checks] == ["a-unit", "b-cmd"]
    script = gen.script
    assert "check a-unit 10 unit x.service" in script
    assert "check b-cmd 10 command 'echo '\"'\"'it; works'\"'\"' && exit 0'" in script
    main = script[script.index("main() {"):]
    assert main.index("gen_checks") > main.index("remove_packages") and main.index("gen_checks") < main.index("finish")


def test_reload_stamp_follows_the_watched_files() -> None:
    def gen(text: str) -> str:
        c = MachineConfig().file("/etc/ssh/sshd_config.d/x.conf", text)
        c.reload_unit("ssh.service", on=["/etc/ssh/sshd_config.d/x.conf"])
        return activation.lists(generation_of("m", c, {}).manifest)["reloads.list"].decode()

    one, two = gen("Port 22\n"), gen("Port 2222\n")
    assert one.startswith("ssh.service ") and one.endswith(" reload-or-restart\n") and one != two
    assert gen("Port 22\n") == one
    bad = MachineConfig().unit("a.service", "[Service]\n").reload_unit("a.service", on=[])
    bad.reload_unit("b.service", on=["/etc/unmanaged"])
    with pytest.raises(ClanError) as err:
        generation_of("m", bad, {})
    assert {p.path for p in err.value.problems} == {"machines.m.reloads.a.service", "machines.m.reloads.b.service.on"}


def test_two_services_declaring_one_check_differently_conflict() -> None:
    a = MachineConfig().check("web", tcp=80)
    b = MachineConfig().check("web", tcp=8080)
    merged, problems = merge_fragments("m", [(Origin("one"), a), (Origin("two"), MachineConfig().check("web", tcp=80))])
    assert not problems and merged.checks["web"].target == "80"
    _, problems = merge_fragments("m", [(Origin("one"), a), (Origin("two"), b)])
    assert [p.path for p in problems] == ["machines.m.checks.web"]


def _run_check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The activation library's `check` function, run by dash in an empty generation folder."""
    script = activation.LIBRARY + "\ncheck " + " ".join(args) + "\n"
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=30,
                          check=False)


def test_check_passes_retries_and_fails_with_output(tmp_path: Path) -> None:
    assert _run_check(tmp_path, "ok", "2", "command", "true").returncode == 0
    # passes on the third attempt: a service that takes a moment to come up
    flaky = f"n=$(cat {tmp_path}/n 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/n; [ $n -ge 2 ]"
    assert _run_check(tmp_path, "flaky", "10", "command", f"'{flaky}'").returncode == 0
    failed = _run_check(tmp_path, "broken", "1", "command", "'echo the reason; exit 3'")
    assert failed.returncode == 1
    assert "the reason" in failed.stdout and "@@pyclan-failed check:broken 1" in failed.stdout
    assert "health check broken failed after 1 s: the command did not exit 0" in failed.stderr
    assert (tmp_path / "failed").read_text() == "check:broken 1\n"  # shows as failed in `generations`


def test_tcp_check_sees_a_listening_port(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert _run_check(tmp_path, "listens", "1", "tcp", str(port)).returncode == 0
    gone = _run_check(tmp_path, "listens", "1", "tcp", str(port))
    assert gone.returncode == 1 and f"nothing listens on TCP port {port}" in gone.stderr


def test_apply_answer_with_armed_confirmation() -> None:
    act = remote.parse_apply("@@pyclan-superseded 4 3\n@@pyclan-log\n@@pyclan-step done\n@@pyclan-armed 5 4 30\n"
                             "@@pyclan-result 5 0\n")
    assert act.ok and act.armed == (5, 4, 30) and act.superseded == "4 3"


def test_check_failure_report_names_the_check_and_keeps_it_with_no_rollback() -> None:
    log = "@@pyclan-step check:web\nnothing on 80\n@@pyclan-failed check:web 1"
    act = remote.Activation(generation=3, status=1, log=log)
    report = activation_report(Target("m", "h"), "id", act, rollback=False)
    assert report.error == "health check 'web' of generation 3 failed; the host stays on it for debugging " \
                           "(--no-rollback)"
    assert report.step == "check:web" and report.output == "nothing on 80"


def test_generations_script_marks_failed_generations(tmp_path: Path) -> None:
    for number, state in ((0, None), (1, None), (2, "check:web 1"), (3, "unconfirmed 0")):
        folder = tmp_path / "generations" / str(number)
        folder.mkdir(parents=True)
        (folder / "id").write_text(f"id{number}\n")
        if state:
            (folder / "failed").write_text(state + "\n")
    (tmp_path / "generations" / "1" / "activated").write_text("2026-01-01T00:00:00Z\n")
    (tmp_path / "current").symlink_to("generations/1")
    script = remote._script(remote.GENERATIONS).replace(HOST_ROOT, str(tmp_path))
    text = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    gens = remote.parse_generations(text)
    assert [(g.number, g.current, g.activated, g.failed) for g in gens.items] == [
        (0, False, None, None), (1, True, "2026-01-01T00:00:00Z", None), (2, False, None, "check:web"),
        (3, False, None, "unconfirmed")]


def test_progress_without_a_terminal_prints_a_line_per_host_and_phase() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with ProgressView(["a", "b"], console) as view:
        view.update("a", "connecting to root@a")
        view.update("b", "connecting to root@b")
        view.update("b", final_status(HostReport("b", error="cannot connect to root@b: no answer within 2 s")))
        view.update("a", final_status(HostReport("a", changed=True, generation=4)))
    lines = [line.split(" [", 1)[0] for line in out.getvalue().splitlines()]
    assert lines == ["a: connecting to root@a", "b: connecting to root@b",
                     "b: failed: cannot connect to root@b: no answer within 2 s", "a: changed (generation 4)"]


@pytest.fixture
def refusing_clan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four machines whose targets refuse connections at once (nothing listens on port 1)."""
    root = tmp_path / "clan"
    root.mkdir()
    machines = "\n".join(f'[machines.{m}]\ndeploy.targetHost = "root@127.0.0.1:1"' for m in "abcd")
    (root / "clan.toml").write_text(f'[meta]\nname = "batches"\n{machines}\n')
    return root


def _update(root: Path, *args: str) -> tuple[int, dict[str, dict[str, object]]]:
    proc = subprocess.run(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(root), "machines", "update",
         "--json", "--connect-timeout", "2", *args], capture_output=True, text=True, check=False, timeout=120,
    )
    return proc.returncode, {r["machine"]: r for r in json.loads(proc.stdout)}


def test_canary_failure_stops_the_rollout_and_names_who_was_not_attempted(refusing_clan: Path) -> None:
    code, out = _update(refusing_clan, "--canary", "1")
    assert code == 1
    assert "cannot connect" in str(out["a"]["error"]) and out["a"]["attempted"] is True
    for m in "bcd":
        assert out[m]["attempted"] is False and str(out[m]["error"]).startswith("not attempted: 1 host(s) failed")
        assert "(a)" in str(out[m]["error"])


def test_batches_start_only_while_fewer_than_max_failures_hosts_failed(refusing_clan: Path) -> None:
    _, out = _update(refusing_clan, "--batch-size", "2", "--max-failures", "2")
    assert [m for m, r in out.items() if r.get("attempted") is False] == ["c", "d"]
    _, out = _update(refusing_clan, "--batch-size", "2", "--max-failures", "3")
    assert all("cannot connect" in str(r["error"]) for r in out.values())  # the second batch ran
    code, out = _update(refusing_clan)  # the default: everyone, in parallel
    assert code == 1 and all("cannot connect" in str(r["error"]) for r in out.values())


def test_status_answer_is_read_into_state_and_drift() -> None:
    from pyclan.deploy.status import STATUS, parse_status

    assert subprocess.run(["sh", "-n"], input=STATUS, text=True, check=False).returncode == 0
    text = ("current 4 abc\npending 4 3\ndrift modified /etc/a b\ndrift mode 600 root root /etc/with space\n"
            "drift failed-unit x.service\ndrift missing-package hello\n")
    st = parse_status("m", text, "abc")
    assert (st.state, st.generation, st.note) == ("up to date", 4, "generation 4 awaits its confirmation")
    assert st.drift == [("modified", "/etc/a b"), ("mode", "/etc/with space (now 600 root:root)"),
                        ("failed-unit", "x.service"), ("missing-package", "hello")]
    assert parse_status("m", "current 4 abc\n", "def").state == "outdated"
    assert parse_status("m", "never\n", "def").state == "never deployed"


def test_a_generation_activated_again_puts_back_files_changed_through_its_tree(tmp_path: Path) -> None:
    import hashlib
    import os

    gen, objects = tmp_path / "gen", tmp_path / "objects"
    (gen / "tree" / "etc" / "sub").mkdir(parents=True)
    objects.mkdir()
    files = {"/etc/edited": b"A\n", "/etc/sub/with space": b"B\n", "/etc/mode": b"M\n", "/etc/fine": b"F\n"}
    lines = []
    for path, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (objects / digest).write_bytes(data)
        (gen / f"tree{path}").write_bytes(data)
        os.chmod(gen / f"tree{path}", 0o644)
        lines.append(f"{digest} 0644 root root {path}")
    (gen / "files.list").write_text("\n".join(lines) + "\n")
    (gen / "tree/etc/edited").write_bytes(b"by hand\n")
    os.chmod(gen / "tree/etc/mode", 0o600)
    (gen / "tree/etc/sub/with space").unlink()
    script = activation.LIBRARY.replace(f"R={HOST_ROOT}", f"R={tmp_path}")
    script += f'\nGEN_DIR={gen}\nW={tmp_path}/work; mkdir -p "$W"\nverify_tree\n'
    first = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert sorted(first.stdout.splitlines()) == [f"restoring {p} (changed on this host)"
                                                 for p in ("/etc/edited", "/etc/mode", "/etc/sub/with space")]
    assert {p: (gen / f"tree{p}").read_bytes() for p in files} == files
    assert {(gen / f"tree{p}").stat().st_mode & 0o7777 for p in files} == {0o644}
    assert subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout == ""
