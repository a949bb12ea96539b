"""SIGKILL of an activation at chosen steps: the host shows the old or the new generation, never a
mix, and the next update converges — fast, against private roots.

A watcher inside the machine's private root waits until the activation reaches a step (its
`@@pyclan-step` line in the generation's log) and kills the activation's whole process group, as
a crash or a power cut would. Which generation the files must show follows from the last step the
killed activation began: before `switch` the old one, after it the new one (`switch` itself: one
of the two). The random-delay version of this test, with units and apt, runs on booted hosts
(`tests/hosts/test_deploy_crash.py`).
"""

from __future__ import annotations

from typing import Any

import pytest

from pyclan.deploy.local import PrivateRoots
from pyclan.deploy.update import UpdateOptions, rollback

M = "crash"
N = 25  # files only one of the two generations has: the links and release steps take a moment
PATHS = ["/etc/crash/shared", "/etc/crash/a-0", f"/etc/crash/a-{N - 1}", "/etc/crash/b-0",
         f"/etc/crash/b-{N - 1}", "/etc/motd"]
#: the activation's steps in order (this clan's generations have no units, packages or checks)
STEPS = ["preflight", "users", "files", "links", "stop-units", "switch", "release", "hook:mark", "remove-users",
         "remove-packages", "done"]

# Kill the running activation once it begins step $1 ("journal": as soon as its journal exists);
# generation 0, the empty one a new host gets first, is let through.
WATCHER = r"""
R=/var/lib/pyclan
want=$1
i=0
until [ -f "$R/journal" ] && read -r n < "$R/journal" && [ "$n" != 0 ]; do
    sleep 0.002; i=$((i + 1)); [ "$i" -lt 30000 ] || { echo timeout; exit 0; }
done
if [ "$want" != journal ]; then
    until grep -qx "@@pyclan-step $want" "$R/generations/$n/activation.log" 2>/dev/null; do
        [ -f "$R/journal" ] || { echo late; exit 0; }  # it finished between two looks
    done
fi
# "killed" only if the activation was unfinished when the kill landed (its journal outlives it)
if kill -9 "-$(cat "$R/activation.pgid")" && [ -f "$R/journal" ]; then echo killed; else echo late; fi
"""

# the step the unfinished activation had begun when it was killed
LAST_STEP = r"""
R=/var/lib/pyclan
grep '^@@pyclan-step' "$R/generations/$(cat "$R/journal")/activation.log" | tail -n 1 | cut -d' ' -f2
"""


def state(name: str) -> dict[str, Any]:
    files = {f"/etc/crash/{name}-{i}": f"{name} {i}\n" for i in range(N)}
    files["/etc/crash/shared"] = f"shared of {name}\n"
    if name == "a":
        files["/etc/motd"] = "motd of a\n"  # b lets go of it: the file from before pyclan returns
    users = {f"crash-{name}" if i == 0 else f"crash-{name}{i}": [] for i in range(4)}  # remove-users takes a moment
    return {"files": files, "users": users, "hooks": {"mark": f"echo {name} > /root/crash-hook"}}


def view(name: str, original_motd: str) -> dict[str, str | None]:
    files = state(name)["files"]
    return {p: files.get(p, original_motd if p == "/etc/motd" else None) for p in PATHS}


@pytest.mark.parametrize("step", ["journal", "users", "files", "links", "switch", "release", "hook:mark",
                                  "remove-users", "done"])
def test_sigkill_at_a_step_leaves_old_or_new_and_the_next_update_converges(
    step: str, local_clan: Any, local_update: Any, read_files: Any, on_host: Any, private_roots: PrivateRoots
) -> None:
    motd = on_host(M, "cat /etc/motd").stdout
    [r] = local_update(local_clan.set({M: state("a")}), [M])
    assert r.error is None and r.changed, r
    assert read_files(M, PATHS) == view("a", motd)

    watcher = private_roots.root(M).popen(f"set -- {step}\n{WATCHER}")
    [killed] = local_update(local_clan.set({M: state("b")}), [M])
    verdict = watcher.communicate(timeout=60)[0].strip()
    if verdict == "late":  # only the last step is so short that the activation may finish first
        assert step == "done", (step, verdict, killed)
        assert read_files(M, PATHS) == view("b", motd)
    else:
        assert verdict == "killed", (step, verdict, killed)
        assert killed.error is not None and not killed.changed, killed
        last = on_host(M, LAST_STEP).stdout.strip()
        # the kill lands in the step it waited for or, when that step is very short, a little later
        assert STEPS.index(last) >= STEPS.index("preflight" if step == "journal" else step), last
        files = read_files(M, PATHS)
        if STEPS.index(last) < STEPS.index("switch"):
            assert files == view("a", motd), (last, files)
        elif last == "switch":  # killed around the one rename: either, never a mix
            assert files in (view("a", motd), view("b", motd)), (last, files)
        else:
            assert files == view("b", motd), (last, files)

    # the next update finishes the interrupted activation and lands on b, and then there is nothing to do
    [fixed] = local_update(local_clan.open(), [M])
    assert fixed.error is None, fixed
    assert read_files(M, PATHS) == view("b", motd)
    facts = on_host(M, "test -e /var/lib/pyclan/journal || echo clean; cat /root/crash-hook; "
                       "id -un crash-b; getent passwd crash-a crash-a1 crash-a2 crash-a3 || echo no-crash-a").stdout
    assert facts.splitlines() == ["clean", "b", "crash-b", "no-crash-a"]
    [again] = local_update(local_clan.open(), [M])
    assert again.error is None and not again.changed, again


def test_sigkill_during_the_first_activation_then_the_update_converges(
    local_clan: Any, local_update: Any, read_files: Any, on_host: Any, private_roots: PrivateRoots
) -> None:
    motd = on_host(M, "cat /etc/motd").stdout
    watcher = private_roots.root(M).popen(f"set -- links\n{WATCHER}")
    [killed] = local_update(local_clan.set({M: state("a")}), [M])
    assert watcher.communicate(timeout=60)[0].strip() == "killed", killed
    assert killed.error is not None
    # nothing of generation 1 shows yet: the host is on the empty generation 0, its files as they were
    assert read_files(M, PATHS) == {**dict.fromkeys(PATHS), "/etc/motd": motd}
    assert on_host(M, "readlink /var/lib/pyclan/current").stdout == "generations/0\n"
    [fixed] = local_update(local_clan.open(), [M])
    assert fixed.error is None and fixed.changed and fixed.generation == 1, fixed
    assert read_files(M, PATHS) == view("a", motd)


def test_sigkill_during_a_rollback_then_the_rollback_again_converges(
    local_clan: Any, local_update: Any, read_files: Any, on_host: Any, private_roots: PrivateRoots
) -> None:
    motd = on_host(M, "cat /etc/motd").stdout
    for name in ("a", "b"):
        local_update(local_clan.set({M: state(name)}), [M])
    opts = UpdateOptions(connector=private_roots.connect)
    watcher = private_roots.root(M).popen(f"set -- release\n{WATCHER}")
    killed = rollback(local_clan.open(), M, opts=opts)
    assert watcher.communicate(timeout=60)[0].strip() == "killed", killed
    assert killed.error is not None
    assert read_files(M, PATHS) == view("a", motd)  # past the switch: generation 1's files, not all released yet
    back = rollback(local_clan.open(), M, to=1, opts=opts)  # the unfinished one is activated again
    assert back.error is None and back.generation == 1, back
    facts = on_host(M, "test -e /var/lib/pyclan/journal || echo clean; cat /root/crash-hook; "
                       "getent passwd crash-b crash-b1 crash-b2 crash-b3 || echo no-crash-b").stdout
    assert facts.splitlines() == ["clean", "a", "no-crash-b"]


def test_a_lost_answer_is_recovered_over_a_new_connection(
    local_clan: Any, local_update: Any, read_files: Any, on_host: Any
) -> None:
    """The controller stops waiting (its deadline) while the activation goes on: it asks the host."""
    motd = on_host(M, "cat /etc/motd").stdout
    local_update(local_clan.set({M: state("a")}), [M])
    slow = state("b")
    slow["hooks"] = {"mark": "sleep 2; echo b > /root/crash-hook"}
    seen: list[str] = []
    [r] = local_update(local_clan.set({M: slow}), [M], progress=lambda _m, line: seen.append(line),
                       activation_timeout=0.5)
    assert "the activation's answer was lost: asking the host over a new connection" in seen, seen
    assert r.error is None and r.changed and r.generation == 2, r  # found finished, then confirmed
    assert read_files(M, PATHS) == view("b", motd)
    after = on_host(M, "cat /root/crash-hook; test -e /var/lib/pyclan/pending || echo confirmed").stdout
    assert after == "b\nconfirmed\n"
