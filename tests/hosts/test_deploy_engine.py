"""Deploy engine on real local hosts: apply, no-op, change, removal, rollback, failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_support import (
    PASSWORD_HASH,
    DeployClan,
    LocalHosts,
    SshRun,
    make_deploy_clan,
    read_files,
    started_hosts_fixture,  # noqa: F401 - provides the `started_hosts` fixture
)

from pyclan.deploy.update import generations, rollback, update

pytestmark = pytest.mark.hosts

UNIT = "app.service"
CONF = "/etc/deploytest/app.conf"


@pytest.fixture
def clan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DeployClan:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    return make_deploy_clan(tmp_path / "clan")


def first_state() -> dict[str, object]:
    return {
        "files": {CONF: "version 1\n", "/etc/deploytest/extra": "extra\n", "/etc/motd": "managed motd\n"},
        "packages": ["hello"],
        "groups": ["team"],
        "users": {"alice": ["team"], "bob": []},
        "password_user": "alice",
        "units": {UNIT: "/bin/sleep infinity"},
        "restart_on": {UNIT: [CONF]},
        "hooks": {"second": "echo second >> /root/hooks.log", "first": "echo first >> /root/hooks.log"},
        "hook_after": {"second": ["first"]},
    }


def unit_pid(ssh_run: SshRun, host: object) -> str:
    return ssh_run(host, f"systemctl show -p MainPID --value {UNIT}").stdout.strip()


def test_update_applies_everything_then_noop_change_removal_and_rollback(
    started_hosts: LocalHosts, ssh_run: SshRun, clan: DeployClan
) -> None:
    (host,) = started_hosts(["dp-basic"])
    original_motd = ssh_run(host, "cat /etc/motd").stdout
    c = clan.set({"dp-basic": first_state()})

    [report] = update(c, ["dp-basic"])
    assert report.error is None and report.changed and report.generation == 1, report
    files = read_files(ssh_run, host, [CONF, "/etc/deploytest/extra", "/etc/motd"])
    assert files == {CONF: "version 1\n", "/etc/deploytest/extra": "extra\n", "/etc/motd": "managed motd\n"}
    facts = ssh_run(host, f"""
        dpkg-query -W -f '${{Status}}\\n' hello
        id -nG alice
        getent shadow alice | cut -d: -f2
        systemctl is-active {UNIT}; systemctl is-enabled {UNIT}
        cat /root/hooks.log
        stat -c '%a %U' /var/lib/pyclan/secrets/deploytest-password/hash
    """).stdout.splitlines()
    assert facts == [
        "install ok installed", "alice team", PASSWORD_HASH, "active", "enabled", "first", "second", "400 root",
    ]
    pid = unit_pid(ssh_run, host)

    # nothing changed: one probe, changed false, nothing run on the host
    history = ssh_run(host, "cat /var/lib/pyclan/history").stdout
    [again] = update(c, ["dp-basic"])
    assert again.error is None and not again.changed and again.generation == 1
    assert ssh_run(host, "cat /var/lib/pyclan/history").stdout == history
    assert ssh_run(host, "cat /root/hooks.log").stdout == "first\nsecond\n"

    # a change: the file, hence a restart; bob, hello, extra and the motd are no longer declared
    state = first_state()
    state["files"] = {CONF: "version 2\n"}
    state["packages"] = []
    state["users"] = {"alice": ["team"]}
    c = clan.set({"dp-basic": state})
    [changed] = update(c, ["dp-basic"])
    assert changed.error is None and changed.changed and changed.generation == 2
    files = read_files(ssh_run, host, [CONF, "/etc/deploytest/extra", "/etc/motd"])
    assert files == {CONF: "version 2\n", "/etc/deploytest/extra": None, "/etc/motd": original_motd}
    assert ssh_run(host, "test -L /etc/motd", check=False).returncode == 1  # a plain file again
    gone = ssh_run(host, "dpkg-query -W hello; id bob", check=False)
    assert "no packages found matching hello" in gone.stderr and "no such user" in gone.stderr
    assert unit_pid(ssh_run, host) not in (pid, "0")

    # rollback: generation 1's files, user and package come back
    back = rollback(c, "dp-basic")
    assert back.error is None and back.generation == 1, back
    files = read_files(ssh_run, host, [CONF, "/etc/deploytest/extra", "/etc/motd"])
    assert files == {CONF: "version 1\n", "/etc/deploytest/extra": "extra\n", "/etc/motd": "managed motd\n"}
    assert ssh_run(host, "id -u bob && dpkg-query -W hello", check=False).returncode == 0
    listed = generations(c, "dp-basic")
    assert [(g.number, g.current) for g in listed.items] == [(0, False), (1, True), (2, False)]
    assert listed.journal is None

    # the CLI lists the same, and an update brings generation 2's content back as generation 3
    out = json.loads(clan.cli("machines", "generations", "dp-basic", "--json", check=True).stdout)
    assert [g["generation"] for g in out if g["current"]] == [1]
    [forward] = update(c, ["dp-basic"])
    assert forward.changed and forward.generation == 3
    assert read_files(ssh_run, host, [CONF])[CONF] == "version 2\n"


def test_failed_activation_is_rolled_back_and_reports_the_step(
    started_hosts: LocalHosts, ssh_run: SshRun, clan: DeployClan
) -> None:
    (host,) = started_hosts(["dp-fail"])
    good = {"files": {CONF: "good\n"}, "hooks": {"check": "true"}}
    c = clan.set({"dp-fail": good})
    assert update(c, ["dp-fail"])[0].generation == 1
    bad = {"files": {CONF: "bad\n", "/etc/deploytest/new": "new\n"}, "users": {"carol": []},
           "hooks": {"check": "echo checking the config; echo 'config is broken' >&2; exit 4"}}
    c = clan.set({"dp-fail": bad})
    [report] = update(c, ["dp-fail"])
    assert report.error is not None and "failed in step 'hook:check'" in report.error
    assert "switched back to generation 1" in report.error
    assert report.step == "hook:check" and report.rolled_back_to == 1 and report.generation == 1
    assert report.output is not None and "checking the config" in report.output and "config is broken" in report.output
    files = read_files(ssh_run, host, [CONF, "/etc/deploytest/new"])
    assert files == {CONF: "good\n", "/etc/deploytest/new": None}
    assert ssh_run(host, "id carol", check=False).returncode != 0  # made by the failed generation, removed again
    assert ssh_run(host, "readlink /var/lib/pyclan/current; test -e /var/lib/pyclan/journal || echo clean").stdout \
        == "generations/1\nclean\n"

    # the CLI says the same and exits non-zero
    proc = clan.cli("machines", "update", "dp-fail", "--json")
    assert proc.returncode == 1
    [out] = json.loads(proc.stdout)
    assert out["machine"] == "dp-fail" and not out["changed"] and "hook:check" in out["error"]
    assert out["generation"] == 1 and out["rolled_back_to"] == 1


def test_unsupported_package_manager_is_named(started_hosts: LocalHosts, ssh_run: SshRun, clan: DeployClan) -> None:
    (host,) = started_hosts(["dp-noapt"])
    ssh_run(host, "mv /usr/bin/apt-get /usr/bin/apt-get.away")
    try:
        c = clan.set({"dp-noapt": {"packages": ["hello"], "files": {CONF: "x\n"}}})
        [report] = update(c, ["dp-noapt"])
    finally:
        ssh_run(host, "mv /usr/bin/apt-get.away /usr/bin/apt-get")
    assert report.error is not None and report.step == "preflight"
    assert report.output is not None and "unsupported package manager" in report.output
    assert read_files(ssh_run, host, [CONF]) == {CONF: None}


def test_dry_run_shows_what_would_change_and_changes_nothing(
    started_hosts: LocalHosts, ssh_run: SshRun, clan: DeployClan
) -> None:
    (host,) = started_hosts(["dp-dry"])
    c = clan.set({"dp-dry": {"files": {CONF: "alpha\nbeta\n"}, "units": {UNIT: "/bin/sleep infinity"},
                             "restart_on": {UNIT: [CONF]}, "users": {"dave": []}, "password_user": "dave"}})
    update(c, ["dp-dry"])
    clan.set({"dp-dry": {"files": {CONF: "alpha\ngamma\n"}, "units": {UNIT: "/bin/sleep infinity"},
                         "restart_on": {UNIT: [CONF]}, "users": {"dave": [], "erin": []}, "packages": ["hello"],
                         "password_user": "dave"}})
    proc = clan.cli("machines", "update", "dp-dry", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in ("would change", f"changed {CONF}", "-beta", "+gamma", "install package hello",
                     "create user erin", f"restart unit {UNIT}"):
        assert expected in out, out
    assert PASSWORD_HASH not in out
    assert read_files(ssh_run, host, [CONF])[CONF] == "alpha\nbeta\n"
    assert ssh_run(host, "ls /var/lib/pyclan/generations").stdout.split() == ["0", "1"]
    as_json = json.loads(clan.cli("machines", "update", "dp-dry", "--dry-run", "--json").stdout)
    assert as_json[0]["changed"] and as_json[0]["changes"]["packages_added"] == ["hello"]
