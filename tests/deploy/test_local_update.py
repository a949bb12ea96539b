"""Update, no-op, change, rollback and removal, for real, against private roots (no booted host).

Each machine is a private root on this machine (`pyclan.deploy.local`): the same probe, upload,
activation, confirmation and clean-up as over SSH, in well under a second per step. What needs a
booted systemd or apt (units, packages) is the real-host tests' (`tests/hosts/test_deploy_engine.py`).
"""

from __future__ import annotations

from typing import Any

import pytest

from pyclan.deploy.local import PrivateRoots
from pyclan.deploy.shell import run_command
from pyclan.deploy.status import status
from pyclan.deploy.targets import resolve_target
from pyclan.deploy.transport import HostKeyCheck
from pyclan.deploy.update import UpdateOptions, generations, install, rollback, update

M = "alpha"
CONF = "/etc/localtest/app.conf"
EXTRA = "/etc/localtest/extra"
PATHS = [CONF, EXTRA, "/etc/motd"]


def first() -> dict[str, Any]:
    return {
        "files": {CONF: "version 1\n", EXTRA: "extra\n", "/etc/motd": "managed motd\n"},
        "groups": ["team"],
        "users": {"alice": ["team"], "bob": []},
        "password_user": "alice",
        "hooks": {"mark": "echo ran >> /root/hooks.log"},
    }


def test_first_apply_creates_generation_1_with_files_users_secrets_and_hooks(
    local_clan: Any, local_update: Any, read_files: Any, on_host: Any
) -> None:
    original_motd = on_host(M, "cat /etc/motd").stdout
    [r] = local_update(local_clan.set({M: first()}), [M])
    assert r.error is None and r.changed and r.generation == 1, r
    assert read_files(M, PATHS) == {CONF: "version 1\n", EXTRA: "extra\n", "/etc/motd": "managed motd\n"}
    facts = on_host(M, "id -nG alice; id -un bob; getent shadow alice | cut -d: -f2; cat /root/hooks.log; "
                       "ls /var/lib/pyclan/generations; readlink /var/lib/pyclan/current; "
                       "test -e /var/lib/pyclan/journal || echo no-journal").stdout.splitlines()
    assert facts[0].split() == ["alice", "team"] and facts[1] == "bob"
    assert facts[2].startswith("$6$pyclantest$")  # the password secret reached the host and was set
    assert facts[3:] == ["ran", "0", "1", "generations/1", "no-journal"]
    # the motd that was there before pyclan is kept as a backup, restored when it is let go of
    assert on_host(M, "cat /var/lib/pyclan/backup/etc/motd").stdout == original_motd


def test_update_again_is_a_noop_and_one_changed_file_is_one_object(
    local_clan: Any, local_update: Any, read_files: Any, on_host: Any
) -> None:
    [r] = local_update(local_clan.set({M: first()}), [M])
    assert r.error is None and r.generation == 1
    history = on_host(M, "cat /var/lib/pyclan/history").stdout

    [again] = local_update(local_clan.open(), [M])
    assert again.error is None and not again.changed and again.generation == 1, again
    assert on_host(M, "cat /var/lib/pyclan/history; cat /root/hooks.log").stdout == history + "ran\n"

    changed = first()
    changed["files"] = {**changed["files"], CONF: "version 2\n"}
    seen: list[str] = []
    [r2] = local_update(local_clan.set({M: changed}), [M], progress=lambda _m, line: seen.append(line))
    assert r2.error is None and r2.changed and r2.generation == 2, r2
    assert any(line.startswith("activating (sent 1 objects") for line in seen), seen
    assert read_files(M, PATHS) == {CONF: "version 2\n", EXTRA: "extra\n", "/etc/motd": "managed motd\n"}
    assert on_host(M, "cat /root/hooks.log").stdout == "ran\nran\n"


def test_rollback_switches_back_to_the_previous_generation_and_update_returns(
    local_clan: Any, local_update: Any, read_files: Any, private_roots: PrivateRoots
) -> None:
    local_update(local_clan.set({M: first()}), [M])
    second = first()
    second["files"] = {CONF: "version 2\n", "/etc/localtest/new": "new\n"}
    second["users"] = {"alice": ["team"]}
    [r] = local_update(local_clan.set({M: second}), [M])
    assert r.error is None and r.generation == 2

    opts = UpdateOptions(connector=private_roots.connect)
    back = rollback(local_clan.open(), M, opts=opts)
    assert back.error is None and back.changed and back.generation == 1, back
    assert read_files(M, [*PATHS, "/etc/localtest/new"]) == {
        CONF: "version 1\n", EXTRA: "extra\n", "/etc/motd": "managed motd\n", "/etc/localtest/new": None}
    assert private_roots.root(M).run("id -un bob").stdout == "bob\n"  # recreated: generation 1 declares it
    listed = generations(local_clan.open(), M, connector=private_roots.connect)
    assert [(g.number, g.current) for g in listed.items] == [(0, False), (1, True), (2, False)]

    [forward] = local_update(local_clan.open(), [M])  # the clan still says generation 2's config
    # a new number for the same content: generations are a history, and only a failed one is retried in place
    assert forward.error is None and forward.changed and (forward.generation, forward.id) == (3, r.id), forward
    assert read_files(M, [CONF, "/etc/localtest/new"]) == {CONF: "version 2\n", "/etc/localtest/new": "new\n"}


def test_what_is_no_longer_declared_is_removed_and_the_file_before_pyclan_comes_back(
    local_clan: Any, local_update: Any, read_files: Any, on_host: Any
) -> None:
    original_motd = on_host(M, "cat /etc/motd").stdout
    local_update(local_clan.set({M: first()}), [M])
    [r] = local_update(local_clan.set({M: {"files": {CONF: "only this\n"}}}), [M])
    assert r.error is None and r.changed, r
    assert read_files(M, PATHS) == {CONF: "only this\n", EXTRA: None, "/etc/motd": original_motd}
    gone = on_host(M, "getent passwd alice bob; getent group team; test -L /etc/motd && echo link; "
                      "ls -A /var/lib/pyclan/backup/etc; cat /var/lib/pyclan/state/users /var/lib/pyclan/state/groups",
                   check=False)
    assert gone.stdout == "", gone.stdout  # users, group, symlink, backup and their records are gone
    [empty] = local_update(local_clan.set({M: {}}), [M])
    assert empty.error is None and empty.changed
    assert read_files(M, [CONF, "/etc/motd"]) == {CONF: None, "/etc/motd": original_motd}
    assert on_host(M, "ls -A /var/lib/pyclan/backup/etc; cat /var/lib/pyclan/state/paths").stdout == ""


def test_a_unit_needs_a_booted_systemd_and_the_host_stays_on_its_generation(
    local_clan: Any, local_update: Any, read_files: Any
) -> None:
    local_update(local_clan.set({M: first()}), [M])
    with_unit = {**first(), "files": {CONF: "version 2\n"}, "units": {"app.service": "/bin/sleep infinity"}}
    [r] = local_update(local_clan.set({M: with_unit}), [M])
    assert r.error is not None and r.step == "preflight", r
    assert "does not run systemd" in (r.output or ""), r.output
    assert r.rolled_back_to == 1 and r.generation == 1 and not r.changed, r
    assert read_files(M, [CONF]) == {CONF: "version 1\n"}


def test_a_failed_health_check_switches_back_to_the_previous_generation(
    local_clan: Any, local_update: Any, read_files: Any
) -> None:
    local_update(local_clan.set({M: first()}), [M])
    check = {"command": "grep -q 'version 1' " + CONF, "timeout": 1}
    broken = {**first(), "files": {CONF: "version 2\n"}, "checks": {"app": check}}
    [r] = local_update(local_clan.set({M: broken}), [M])
    assert r.step == "check:app" and r.rolled_back_to == 1 and r.generation == 1, r
    assert r.error is not None and "switched back to generation 1" in r.error
    assert read_files(M, [CONF]) == {CONF: "version 1\n"}


def test_unreachable_after_activation_switches_back_by_itself(
    local_clan: Any, local_update: Any, read_files: Any, private_roots: PrivateRoots, on_host: Any
) -> None:
    """Magic rollback: no new connection can confirm the generation, so the host reverts it."""
    local_update(local_clan.set({M: first()}), [M])
    cut_off = {**first(), "files": {CONF: "version 2\n"},
               # the activation's last word: no new connection gets through any more
               "hooks": {"cut": "touch /root/cut"}}
    real = private_roots.connect

    async def refusing_after_cut(target: Any, check: Any, timeout: float) -> Any:
        if private_roots.root(M).run("test -e /root/cut", check=False).returncode == 0:
            private_roots.refuse(M)
        return await real(target, check, timeout)

    clan = local_clan.set({M: cut_off})
    [r] = update(clan, [M], UpdateOptions(connector=refusing_after_cut, confirm_timeout=2))
    assert r.error is not None and r.error.startswith("rolled back: host unreachable after activation"), r
    assert r.generation == 1 and r.rolled_back_to == 1, r
    assert read_files(M, [CONF]) == {CONF: "version 1\n"}
    private_roots.refuse(M, False)
    assert on_host(M, "cat /var/lib/pyclan/generations/2/failed").stdout == "unconfirmed 0\n"


def test_status_shows_a_hand_edit_and_a_plain_update_puts_it_back(
    local_clan: Any, local_update: Any, read_files: Any, on_host: Any, private_roots: PrivateRoots
) -> None:
    local_update(local_clan.set({M: first()}), [M])
    [fresh] = status(local_clan.open(), [M], connector=private_roots.connect)
    assert (fresh.state, fresh.generation, fresh.drift, fresh.error) == ("up to date", 1, [], None), fresh
    on_host(M, f"echo edited > {CONF}")  # through the managed symlink, into the generation's tree
    [drifted] = status(local_clan.open(), [M], connector=private_roots.connect)
    assert drifted.state == "up to date" and any(CONF in what for _, what in drifted.drift), drifted
    [repaired] = local_update(local_clan.open(), [M])  # a plain update repairs
    assert repaired.error is None and repaired.extra.get("repaired"), repaired
    assert read_files(M, [CONF]) == {CONF: "version 1\n"}


def test_a_command_streams_its_output_and_keeps_its_exit_status(
    local_clan: Any, private_roots: PrivateRoots, capfd: pytest.CaptureFixture[str]
) -> None:
    target = resolve_target(local_clan.set({M: first()}), M)
    code = run_command(target, HostKeyCheck.STRICT, "hostname; id -u; exit 3", connector=private_roots.connect)
    assert code == 3
    assert capfd.readouterr().out == f"{M}\n0\n"


def test_install_prepares_a_fresh_host_then_makes_its_first_update(
    local_clan: Any, read_files: Any, on_host: Any, private_roots: PrivateRoots
) -> None:
    report = install(local_clan.set({M: first()}), M, UpdateOptions(connector=private_roots.connect))
    assert report.error is None and report.changed and report.generation == 1, report
    assert read_files(M, [CONF]) == {CONF: "version 1\n"}
    assert on_host(M, "stat -c '%a' /var/lib/pyclan/objects /var/lib/pyclan/state").stdout == "700\n700\n"
