"""SIGKILL at random points of an activation: the host shows the old or the new generation, never a mix.

A watcher on the host waits for the activation to begin (its journal appears), sleeps a random
part of a measured activation time and kills the activation's whole process group — the
wrapper that would roll back included — as a crash or power cut would. The files are then read
before anything else can run: every managed path must match one generation as a whole. Then a
normal update must succeed and land on the wanted generation.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest
from deploy_support import (
    DeployClan,
    LocalHosts,
    SshRun,
    make_deploy_clan,
    read_files,
    started_hosts_fixture,  # noqa: F401 - provides the `started_hosts` fixture
)

from pyclan.build.layout import KEEP_GENERATIONS
from pyclan.deploy.update import update
from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts

KILLS_WANTED = 20
MAX_TRIALS = 40
PATHS = ["/etc/crash/a", "/etc/crash/b", "/etc/crash/only-a", "/etc/crash/only-b", "/etc/motd",
         "/etc/systemd/system/crash.service"]

WATCHER = r"""
R=/var/lib/pyclan
i=0
while ! [ -f "$R/journal" ]; do
    sleep 0.005; i=$((i + 1)); [ "$i" -lt 3000 ] || { echo timeout; exit 0; }
done
pg=$(cat "$R/activation.pgid")
sleep {delay}
# "killed" only if the activation was still unfinished when the kill landed: its journal
# outlives the kill. A kill that only hits the group's last exiting processes is "late".
if kill -KILL -- "-$pg" 2>/dev/null; then
    if [ -f "$R/journal" ]; then echo killed; else echo late; fi
else
    echo missed
fi
"""

# how long an activation takes on the host, from its journal appearing to its removal
TIMER = r"""
R=/var/lib/pyclan
while ! [ -f "$R/journal" ]; do sleep 0.002; done
start=$(date +%s%N)
while [ -f "$R/journal" ]; do sleep 0.002; done
echo $(( ($(date +%s%N) - start) / 1000000 ))
"""

# kill while dpkg is at work: as soon as it reports a stage of installing `hello`
APT_WATCHER = r"""
R=/var/lib/pyclan
i=0
until grep -qs '^{stage} hello' "$R"/generations/*/activation.log; do
    sleep 0.002; i=$((i + 1)); [ "$i" -lt 15000 ] || { echo timeout; exit 0; }
done
pg=$(cat "$R/activation.pgid")
if kill -KILL -- "-$pg" 2>/dev/null; then echo killed; else echo missed; fi
"""


# the step an unfinished activation was in
LAST_STEP = r"""
R=/var/lib/pyclan
grep '^@@pyclan-step' "$R/generations/$(cat "$R/journal")/activation.log" | tail -n 1 | cut -d' ' -f2
"""


def watch(host: hosts.HostInfo, script: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        hosts.ssh_command(host, script), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    time.sleep(0.2)  # the watcher's session is up before the deploy starts
    return proc


def state(name: str) -> dict[str, object]:
    """Two generations that differ in every kind of thing an activation touches."""
    other = "b" if name == "a" else "a"
    return {
        "files": {
            "/etc/crash/a": f"a of {name}\n", "/etc/crash/b": f"b of {name}\n", f"/etc/crash/only-{name}": name + "\n",
            **({"/etc/motd": "motd of a\n"} if name == "a" else {}),
        },
        "users": {f"crash-{name}": []},
        "units": {"crash.service": f"/bin/sleep {1000 if name == 'a' else 2000}"},
        "hooks": {"mark": f"echo {name} > /root/crash-hook", f"extra-{name}": "true"},
        "hook_after": {"mark": [f"extra-{other}"]},
    }


def expected(name: str, original_motd: str) -> dict[str, str | None]:
    files = state(name)["files"]
    assert isinstance(files, dict)
    out: dict[str, str | None] = {p: files.get(p) for p in PATHS[:4]}
    out["/etc/motd"] = files.get("/etc/motd", original_motd)
    out["/etc/systemd/system/crash.service"] = (
        "[Unit]\nDescription=crash.service\n[Service]\n"
        f"ExecStart=/bin/sleep {1000 if name == 'a' else 2000}\n[Install]\nWantedBy=multi-user.target\n"
    )
    return out


def test_sigkill_during_activation_leaves_old_or_new_never_a_mix(
    started_hosts: LocalHosts, ssh_run: SshRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    clan: DeployClan = make_deploy_clan(tmp_path / "clan")
    (host,) = started_hosts(["dp-crash"])
    motd = ssh_run(host, "cat /etc/motd").stdout
    views = {name: expected(name, motd) for name in ("a", "b")}

    for name in ("a", "b", "a"):
        [r] = update(clan.set({"dp-crash": state(name)}), ["dp-crash"])
        assert r.error is None and r.changed, r
    assert read_files(ssh_run, host, PATHS) == views["a"]
    durations = {}
    for name in ("b", "a"):  # the activation time on the host, each way
        timer = watch(host, TIMER)
        [r] = update(clan.set({"dp-crash": state(name)}), ["dp-crash"])
        assert r.error is None and r.changed, r
        durations[name] = int(timer.communicate(timeout=60)[0].strip()) / 1000

    rng = random.Random(20240601)
    kills, seen, steps = 0, {"old": 0, "new": 0}, set()
    on = "a"
    for trial in range(MAX_TRIALS):
        if kills >= KILLS_WANTED:
            break
        want = "b" if on == "a" else "a"
        delay = rng.uniform(0.0, durations[want])
        watcher = watch(host, WATCHER.replace("{delay}", f"{delay:.3f}"))
        [r] = update(clan.set({"dp-crash": state(want)}), ["dp-crash"])
        verdict = watcher.communicate(timeout=60)[0].strip()
        files = read_files(ssh_run, host, PATHS)
        matches = [name for name, view in views.items() if files == view]
        assert len(matches) == 1, f"trial {trial} ({verdict} after {delay:.3f}s, report {r}): a mix: {files}"
        if verdict == "killed":
            kills += 1
            seen["new" if matches[0] == want else "old"] += 1
            assert r.error is not None, r
            steps.add(ssh_run(host, LAST_STEP).stdout.strip())
            # the next update repairs the host and lands on the wanted generation
            [fixed] = update(clan.open(), ["dp-crash"])
            assert fixed.error is None, fixed
            assert read_files(ssh_run, host, PATHS) == views[want]
            assert ssh_run(host, "test -e /var/lib/pyclan/journal || echo clean").stdout == "clean\n"
        elif verdict == "late":
            # the activation had finished (journal gone) when the kill hit its exiting processes:
            # the host is on the new generation, whether or not its answer got out before the kill
            assert matches == [want], (r, files)
            if r.error is not None:
                [fixed] = update(clan.open(), ["dp-crash"])
                assert fixed.error is None and not fixed.changed, fixed
        else:
            assert r.error is None, r
            assert matches == [want]
        on = want
    assert kills >= KILLS_WANTED, f"only {kills} activations were killed in {MAX_TRIALS} trials"
    assert seen["old"] and seen["new"], seen  # killed both before and after the switch
    assert len(steps) >= 3, steps  # and in several different steps (where kills land is random)
    # the host works normally afterwards: units and users match the last generation
    facts = ssh_run(host, f"systemctl is-active crash.service; cat /root/crash-hook; id -un crash-{on}").stdout
    assert facts.splitlines() == ["active", on, f"crash-{on}"]
    # old generations were cleaned up along the way (generation 0 and the current one always stay)
    kept = ssh_run(host, "ls /var/lib/pyclan/generations").stdout.split()
    assert "0" in kept and len(kept) <= KEEP_GENERATIONS + 2, kept


def test_sigkill_inside_apt_is_repaired_by_the_next_update(
    started_hosts: LocalHosts, ssh_run: SshRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    clan = make_deploy_clan(tmp_path / "clan")
    (host,) = started_hosts(["dp-aptkill"])
    [r] = update(clan.set({"dp-aptkill": {"files": {"/etc/crash/a": "old\n"}}}), ["dp-aptkill"])
    assert r.error is None
    new = {"files": {"/etc/crash/a": "new\n"}, "packages": ["hello"]}
    for stage in ("Unpacking", "Setting up"):  # dpkg killed half-way through either stage
        watcher = watch(host, APT_WATCHER.replace("{stage}", stage))
        [r] = update(clan.set({"dp-aptkill": new}), ["dp-aptkill"])
        assert watcher.communicate(timeout=60)[0].strip() == "killed", r
        assert r.error is not None
        assert read_files(ssh_run, host, ["/etc/crash/a"]) == {"/etc/crash/a": "old\n"}  # not switched yet
        [r] = update(clan.set({"dp-aptkill": {"files": {"/etc/crash/a": "old\n"}}}), ["dp-aptkill"])
        assert r.error is None, (r, r.output)  # back to the old generation: hello is purged again, if it got in
        status = ssh_run(host, "dpkg --audit; dpkg-query -W -f '${db:Status-Abbrev}' hello", check=False)
        assert status.stdout.strip() in ("", "un"), status.stdout
    [fixed] = update(clan.set({"dp-aptkill": new}), ["dp-aptkill"])
    assert fixed.error is None, fixed
    assert ssh_run(host, "dpkg-query -W -f '${Status}' hello; dpkg --audit").stdout == "install ok installed"
    assert read_files(ssh_run, host, ["/etc/crash/a"]) == {"/etc/crash/a": "new\n"}
