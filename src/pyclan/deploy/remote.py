"""What pyclan runs on a host, as small POSIX-sh programs, and how their answers are read.

An update is two round trips over one connection: `probe` (what generation is current, is an
activation unfinished, which objects are missing; update.py appends the drift check) and
`apply` (a tar of the missing objects, the generation folder and its secrets on stdin; unpack,
activate, roll back on failure, clean up old generations). A host that is up to date needs only
the probe.

Magic rollback: after a successful activation `apply` arms a host-side timer (a transient
systemd unit, so it outlives the SSH session) that switches back to the previous generation
unless `confirm` arrives over a *new* connection first. A change that cuts the controller off
(sshd on another port, a firewall rule, a broken network) therefore undoes itself.

`apply` writes nothing to the connection until the end, so a dropped connection does not stop
an activation half-way; it takes a lock, so two deploys to one host never interleave; and it
records its process group in `activation.pgid`, which the crash tests use to kill it.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyclan.build.generation import Generation
from pyclan.build.layout import HOST_ROOT, KEEP_GENERATIONS, SCRIPT
from pyclan.deploy.connection import CommandResult, Connection
from pyclan.errors import ClanError

PROBE = r"""
R=__ROOT__
echo "uid $(id -u)"
cur=$(readlink "$R/current" 2>/dev/null || true); cur=${cur##*/}
if [ -n "$cur" ] && [ -f "$R/generations/$cur/id" ]; then echo "current $cur $(cat "$R/generations/$cur/id")"; fi
if [ -f "$R/journal" ]; then
    j=$(cat "$R/journal")
    echo "journal $j $(cat "$R/generations/$j/id" 2>/dev/null || echo -)"
fi
if [ -f "$R/pending" ]; then echo "pending $(cat "$R/pending")"; fi
while read -r o; do [ -f "$R/objects/$o" ] || echo "missing $o"; done
"""

# Shared by apply, confirm and the revert: stop an armed confirmation timer.
DISARM = r"""
disarm_timer() {
    if [ -f "$R/pending.pid" ]; then kill "$(cat "$R/pending.pid")" 2>/dev/null || true; fi
    if [ -d /run/systemd/system ]; then
        systemctl stop pyclan-confirm.timer pyclan-confirm.service 2>/dev/null || true
        systemctl reset-failed pyclan-confirm.timer pyclan-confirm.service 2>/dev/null || true
    fi
    rm -f "$R/pending.pid"
}
disarm() {  # the pending generation stays: stop the timer that would switch back from it
    disarm_timer
    rm -f "$R/pending"
}
"""

# Run by the host itself (a transient systemd timer, or a detached sleeper without systemd) when
# the controller did not confirm generation N in time: switch back to PREV.
REVERT = r"""
R=__ROOT__
n=$1 prev=$2
[ -z "${3:-}" ] || sleep "$3"
exec 9> "$R/lock"
flock 9
[ "$(cat "$R/pending" 2>/dev/null || true)" = "$n $prev" ] || exit 0  # confirmed or superseded
cur=$(readlink "$R/current" 2>/dev/null || true)
if [ "${cur##*/}" = "$n" ] && [ -f "$R/generations/$prev/activate.sh" ]; then
    rc=0
    (cd "$R/generations/$prev" && exec sh ./activate.sh) > "$R/generations/$prev/rollback.log" 2>&1 < /dev/null \
        || rc=$?
    printf 'unconfirmed 0\n' > "$R/generations/$n/failed"
    printf '%s %s\n' "$prev" "$rc" > "$R/generations/$n/reverted"
    printf '%s %s %s rc=unconfirmed reverted-to=%s rc=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$n" \
        "$(cat "$R/generations/$n/id")" "$prev" "$rc" >> "$R/history"
fi
rm -f "$R/pending" "$R/pending.pid"
"""

APPLY = r"""
R=__ROOT__
umask 077  # logs and state are root's; the activation sets its own umask for the tree
mkdir -p "$R" || exit 1
chmod 755 "$R"
LOG=$R/.apply.$$.log
__DISARM__
run() {  # run GENERATION LOGNAME: its activation script, output to its folder
    (cd "$R/generations/$1" && exec sh ./activate.sh "$repair") > "$R/generations/$1/$2" 2>&1 < /dev/null
}

gc() {  # old generations go, but never 0, the current one, or the one a pending confirmation needs
    cur=$(readlink "$R/current"); cur=${cur##*/}
    back=$(cut -d' ' -f2 "$R/pending" 2>/dev/null || true)
    for g in $(ls "$R/generations" | grep -x '[0-9][0-9]*' | sort -n | head -n -__KEEP__); do
        if [ "$g" != 0 ] && [ "$g" != "$cur" ] && [ "$g" != "$back" ]; then rm -rf "$R/generations/$g"; fi
    done
    cat "$R"/generations/*/objects.list 2>/dev/null | sort -u > "$R/.keep"
    ls "$R/objects" | sort | comm -23 - "$R/.keep" | (cd "$R/objects" && xargs -r rm -f --)
    rm -f "$R/.keep"
}

arm() {  # arm N PREV SECONDS: the host switches back to PREV unless `confirm N PREV` comes first
    printf '%s %s\n' "$1" "$2" > "$R/pending"
    cat > "$R/revert.sh" <<'PYCLAN_REVERT'
__REVERT__
PYCLAN_REVERT
    disarm_timer
    if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 \
        && systemd-run --quiet --collect --unit=pyclan-confirm --on-active="$3" \
            --timer-property=AccuracySec=100ms --property=KillMode=process \
            --description="pyclan: back to generation $2 unless generation $1 is confirmed" \
            /bin/sh "$R/revert.sh" "$1" "$2"; then
        :
    else  # no systemd (or systemd-run failed): a detached sleeper, outside this SSH session
        setsid sh "$R/revert.sh" "$1" "$2" "$3" > /dev/null 2>&1 < /dev/null 9>&- &
        echo "$!" > "$R/pending.pid"
    fi
    echo "@@pyclan-armed $1 $2 $3"
}

apply() {
    set -eu
    mode=$1 want=$2 rollback=$3 confirm=$4 repair=${5:--}  # repair: the activation skips no step
    mkdir -p "$R/objects" "$R/generations" "$R/state"
    chmod 755 "$R" "$R/generations"
    chmod 700 "$R/objects" "$R/state"
    exec 9> "$R/lock"
    if ! flock -w 600 9; then echo "@@pyclan-busy"; exit 75; fi
    read -r _ _ _ _ pgrp _ < /proc/self/stat
    echo "$pgrp" > "$R/activation.pgid"
    if [ -f "$R/pending" ]; then  # we reached the host over a new connection: it stays
        echo "@@pyclan-superseded $(cat "$R/pending")"
        disarm
    fi
    rm -rf "$R"/.incoming.*
    prev=$(readlink "$R/current" 2>/dev/null || true); prev=${prev##*/}
    if [ "$mode" = upload ]; then
        in=$R/.incoming.$$
        mkdir -m 700 "$in"
        tar -x -C "$in" -f -
        if [ -d "$in/objects" ]; then
            for f in "$in"/objects/*; do
                if [ -f "$f" ]; then mv -f "$f" "$R/objects/"; fi
            done
        fi
        if ! [ -e "$R/current" ] && [ -d "$in/gen0" ] && ! [ -d "$R/generations/0" ]; then
            mv "$in/gen0" "$R/generations/0"
        fi
        last=$(ls "$R/generations" | grep -x '[0-9][0-9]*' | sort -n | tail -n 1)
        retry=
        for g in $(ls "$R/generations" | grep -x '[0-9][0-9]*' | sort -rn); do
            if [ "$g" != 0 ] && [ "$g" != "$prev" ] && [ -f "$R/generations/$g/failed" ] \
                && cmp -s "$in/gen/id" "$R/generations/$g/id"; then retry=$g; break; fi
        done
        if [ -n "$retry" ]; then
            n=$retry  # a retry of a generation that failed: the same number, fresh secrets
            rm -rf "$R/generations/$n/secrets"
            mv "$in/gen/secrets" "$R/generations/$n/secrets"
            rm -f "$R/generations/$n/failed" "$R/generations/$n/reverted" "$R/generations/$n/rollback.log"
        else
            n=$(( ${last:-0} + 1 ))
            chmod 755 "$in/gen"
            mv "$in/gen" "$R/generations/$n"
        fi
        rm -rf "$in"
    else
        n=$want
        if ! [ -f "$R/generations/$n/activate.sh" ]; then echo "@@pyclan-nogen $n"; exit 3; fi
    fi
    while read -r o; do
        if ! [ -f "$R/objects/$o" ]; then echo "@@pyclan-missing $o"; exit 4; fi
    done < "$R/generations/$n/objects.list"
    if ! [ -e "$R/current" ] && [ "$n" != 0 ] && [ -f "$R/generations/0/activate.sh" ]; then
        rc=0; run 0 activation.log || rc=$?
        if [ "$rc" -ne 0 ]; then
            echo "@@pyclan-log"; cat "$R/generations/0/activation.log"; echo "@@pyclan-result 0 $rc"; exit 0
        fi
        prev=0
    fi
    rc=0; run "$n" activation.log || rc=$?
    echo "@@pyclan-log"
    cat "$R/generations/$n/activation.log"
    if [ "$rc" -ne 0 ] && [ "$rollback" = 1 ] && [ -n "$prev" ] && [ "$prev" != "$n" ] \
        && [ -f "$R/generations/$prev/activate.sh" ]; then
        rrc=0; run "$prev" rollback.log || rrc=$?
        echo "@@pyclan-rollback $prev $rrc"
        cat "$R/generations/$prev/rollback.log"
    fi
    if [ "$rc" -eq 0 ] && [ "$confirm" != 0 ] && [ -n "$prev" ] && [ "$prev" != "$n" ] \
        && [ -f "$R/generations/$prev/activate.sh" ]; then
        arm "$n" "$prev" "$confirm"
    fi
    if [ "$rc" -eq 0 ]; then gc; fi
    printf '%s %s %s rc=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$n" "$(cat "$R/generations/$n/id")" "$rc" \
        >> "$R/history"
    echo "@@pyclan-result $n $rc"
}

( apply "$@" ) > "$LOG" 2>&1
status=$?
cat "$LOG"
rm -f "$LOG"
exit $status
"""

# Over a NEW connection: the proof that the host is still reachable after the activation.
CONFIRM = r"""
R=__ROOT__
n=$1 prev=$2
__DISARM__
exec 9> "$R/lock"
flock -w 600 9 || { echo busy; exit 0; }
if [ "$(cat "$R/pending" 2>/dev/null || true)" = "$n $prev" ]; then
    disarm
    echo confirmed
elif [ -f "$R/generations/$n/reverted" ]; then
    echo "reverted $(cat "$R/generations/$n/reverted")"
else
    echo superseded
fi
"""

# What became of generation N (armed with PREV): waits while the confirmation is pending.
OUTCOME = r"""
R=__ROOT__
n=$1 prev=$2 limit=$3
i=0
while [ "$(cat "$R/pending" 2>/dev/null || true)" = "$n $prev" ]; do
    [ "$i" -lt "$(( limit * 5 ))" ] || { echo pending; exit 0; }
    sleep 0.2; i=$((i + 1))
done
if [ -f "$R/generations/$n/reverted" ]; then echo "reverted $(cat "$R/generations/$n/reverted")"; else echo kept; fi
"""

# The last generation with id $1, when the answer of its activation was lost.
FIND = r"""
R=__ROOT__
for g in $(ls "$R/generations" 2>/dev/null | grep -x '[0-9][0-9]*' | sort -rn); do
    [ "$(cat "$R/generations/$g/id" 2>/dev/null)" = "$1" ] || continue
    cur=$(readlink "$R/current" 2>/dev/null || true); cur=${cur##*/}
    busy=idle; (flock -n 9 || exit 1) 9> "$R/lock" || busy=locked
    printf 'generation %s %s %s\n' "$g" "$busy" "$([ "$g" = "$cur" ] && echo current || echo -)"
    if [ -f "$R/pending" ]; then echo "pending $(cat "$R/pending")"; fi
    if [ -f "$R/generations/$g/reverted" ]; then echo "reverted $(cat "$R/generations/$g/reverted")"; fi
    if [ -f "$R/generations/$g/failed" ]; then echo "failed $(cat "$R/generations/$g/failed")"; fi
    exit 0
done
echo none
"""

GENERATIONS = r"""
R=__ROOT__
[ -d "$R/generations" ] || exit 0
cur=$(readlink "$R/current" 2>/dev/null || true); cur=${cur##*/}
for g in $(ls "$R/generations" | grep -x '[0-9][0-9]*' | sort -n); do
    d=$R/generations/$g
    [ -f "$d/id" ] || continue
    c=-; [ "$g" != "$cur" ] || c=current
    f=$(cut -d' ' -f1 "$d/failed" 2>/dev/null || echo -)
    printf '%s %s %s %s %s\n' "$g" "$(cat "$d/id")" "$(cat "$d/activated" 2>/dev/null || echo -)" "$c" "${f:--}"
done
if [ -f "$R/journal" ]; then echo "journal $(cat "$R/journal")"; fi
"""

READ_MANIFEST = r"""
cat "__ROOT__/generations/$1/manifest.json"
"""

READ_OBJECTS = r"""
cd "__ROOT__/objects" && tar -c -f - -- "$@"
"""


def _script(text: str) -> str:
    text = text.replace("__DISARM__", DISARM.strip("\n")).replace("__REVERT__", REVERT.strip("\n"))
    return text.replace("__ROOT__", HOST_ROOT).replace("__KEEP__", str(KEEP_GENERATIONS)).strip() + "\n"


def _failure(conn: Connection, what: str, result: CommandResult) -> ClanError:
    detail = result.error_text or result.text.strip() or f"exit status {result.exit_status}"
    where = f"machines.{conn.target.machine}"
    return ClanError.single("deploy-error", where, f"{what} on {conn.target} failed: {detail}")


# --- probe --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    uid: int
    current: int | None
    current_id: str | None
    journal: int | None  # an unfinished activation of this generation
    journal_id: str | None
    missing: tuple[str, ...]
    pending: tuple[int, int] | None = None  # (generation, previous): activated, awaiting confirmation
    drift: tuple[str, ...] = ()  # `drift KIND WHAT` lines of an `extra` check, without the `drift `

    def up_to_date(self, gen_id: str) -> bool:
        return self.current_id == gen_id and self.journal is None


def parse_probe(text: str) -> Probe:
    uid, current, current_id, journal, journal_id = -1, None, None, None, None
    missing: list[str] = []
    drift: list[str] = []
    pending: tuple[int, int] | None = None
    for line in text.splitlines():
        if line.startswith("drift "):
            drift.append(line[6:])
            continue
        words = line.split()
        if not words:
            continue
        if words[0] == "uid" and len(words) > 1 and words[1].isdigit():
            uid = int(words[1])
        elif words[0] == "current" and len(words) == 3 and words[1].isdigit():
            current, current_id = int(words[1]), words[2]
        elif words[0] == "journal" and len(words) == 3 and words[1].isdigit():
            journal, journal_id = int(words[1]), (None if words[2] == "-" else words[2])
        elif words[0] == "missing" and len(words) == 2:
            missing.append(words[1])
        elif words[0] == "pending" and len(words) == 3 and words[1].isdigit() and words[2].isdigit():
            pending = (int(words[1]), int(words[2]))
    return Probe(uid, current, current_id, journal, journal_id, tuple(missing), pending, tuple(drift))


async def probe(conn: Connection, object_ids: list[str], timeout: float | None = None, extra: str = "") -> Probe:
    """What the host runs and lacks; `extra` (shell, after the probe, same round trip) may print `drift …` lines."""
    script = _script(PROBE) + extra
    result = await conn.run(script, input="".join(f"{o}\n" for o in object_ids).encode(), timeout=timeout)
    if result.exit_status != 0:
        raise _failure(conn, "probing the host", result)
    found = parse_probe(result.text)
    if found.uid != 0:
        raise ClanError.single(
            "deploy-error", f"machines.{conn.target.machine}",
            f"commands on {conn.target} do not run as root (uid {found.uid})",
            hint="deploy as root, or as a user with passwordless sudo",
        )
    return found


# --- upload + activate --------------------------------------------------------------------------
def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info)


def _add_generation(tar: tarfile.TarFile, prefix: str, gen: Generation, secrets: Mapping[str, bytes]) -> None:
    _add_dir(tar, prefix, 0o700)
    for name, data in gen.folder_files().items():
        _add(tar, f"{prefix}/{name}", data, 0o700 if name == SCRIPT else 0o600)
    _add_dir(tar, f"{prefix}/secrets", 0o700)
    made: set[str] = set()
    for rel, value in sorted(secrets.items()):
        folder = rel.rsplit("/", 1)[0]
        if folder not in made:
            _add_dir(tar, f"{prefix}/secrets/{folder}", 0o700)
            made.add(folder)
        _add(tar, f"{prefix}/secrets/{rel}", value, 0o400)


def payload(
    gen: Generation, objects: list[str], secrets: Mapping[str, bytes], first: Generation | None = None
) -> bytes:
    """The tar `apply` unpacks: missing objects, the generation (+ generation 0 on a new host)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        if objects:
            _add_dir(tar, "objects", 0o700)
        for key in objects:
            _add(tar, f"objects/{key}", gen.objects[key], 0o600)
        _add_generation(tar, "gen", gen, secrets)
        if first is not None:
            _add_generation(tar, "gen0", first, {})
    return buf.getvalue()


@dataclass
class Activation:
    """What `apply` reported: the generation number, its activation's result and output."""

    generation: int | None = None
    status: int = -1
    log: str = ""
    rollback_to: int | None = None
    rollback_status: int | None = None
    rollback_log: str = ""
    problem: str | None = None  # apply itself failed (busy, missing objects, …)
    armed: tuple[int, int, int] | None = None  # (generation, previous, seconds): awaits confirmation
    superseded: str | None = None  # an earlier unconfirmed generation this apply took over from

    @property
    def ok(self) -> bool:
        return self.problem is None and self.status == 0

    @property
    def failed_step(self) -> str | None:
        for line in reversed(self.log.splitlines()):
            if line.startswith("@@pyclan-failed "):
                return line.split()[1]
        return None

    def step_output(self, step: str | None = None, limit: int = 40) -> str:
        """The output the failing step (or `step`) printed, without the markers."""
        want = step or self.failed_step
        lines: list[str] = []
        current: str | None = None
        for line in self.log.splitlines():
            if line.startswith("@@pyclan-step "):
                current = line.split(" ", 1)[1]
                lines = [] if current == want else lines
                continue
            if line.startswith("@@pyclan-"):
                continue
            if current == want:
                lines.append(line)
        return "\n".join(lines[-limit:])

    def steps(self) -> list[str]:
        return [line.split(" ", 1)[1] for line in self.log.splitlines() if line.startswith("@@pyclan-step ")]


def parse_apply(text: str) -> Activation:
    act = Activation()
    section = "head"
    head: list[str] = []
    log: list[str] = []
    rollback: list[str] = []
    for line in text.splitlines():
        if line == "@@pyclan-log":
            section = "log"
            continue
        if line.startswith("@@pyclan-rollback "):
            words = line.split()
            act.rollback_to, act.rollback_status = int(words[1]), int(words[2])
            section = "rollback"
            continue
        if line.startswith("@@pyclan-result "):
            words = line.split()
            act.generation, act.status = int(words[1]), int(words[2])
            continue
        if line.startswith("@@pyclan-armed "):
            words = line.split()
            if len(words) == 4 and all(w.isdigit() for w in words[1:]):
                act.armed = (int(words[1]), int(words[2]), int(words[3]))
            continue
        if line.startswith("@@pyclan-superseded "):
            act.superseded = line.split(" ", 1)[1]
            continue
        if line == "@@pyclan-busy":
            act.problem = "another pyclan deploy to this host is still running (waited 10 minutes)"
        elif line.startswith("@@pyclan-nogen "):
            act.problem = f"the host has no generation {line.split()[1]}"
        elif line.startswith("@@pyclan-missing "):
            act.problem = f"object {line.split()[1]} vanished from the host during the upload; run the update again"
        {"head": head, "log": log, "rollback": rollback}[section].append(line)
    act.log = "\n".join(log)
    act.rollback_log = "\n".join(rollback)
    if act.generation is None and act.problem is None:
        act.problem = "\n".join(head[-20:]).strip() or "the host gave no answer"
    return act


@dataclass(frozen=True)
class ApplyOptions:
    rollback: bool = True  # switch back to the previous generation when a step or check fails
    confirm_timeout: int = 30  # seconds the host waits for `confirm` before switching back; 0: off
    timeout: float | None = None  # the controller's deadline for the whole apply
    repair: bool = False  # the host drifted: the activation runs every step, skipping none


async def apply(
    conn: Connection, data: bytes | None = None, existing: int | None = None, opts: ApplyOptions = ApplyOptions()
) -> Activation:
    """Unpack `data` as a new generation and activate it, or re-activate generation `existing`."""
    mode = ("upload", "-") if data is not None else ("existing", str(existing))
    args = (*mode, "1" if opts.rollback else "0", str(max(0, opts.confirm_timeout)), "repair" if opts.repair else "-")
    result = await conn.run(_script(APPLY), *args, input=data if data is not None else b"", timeout=opts.timeout)
    act = parse_apply(result.text)
    if result.exit_status != 0 and act.problem is None and act.generation is None:
        act.problem = result.error_text or result.text.strip() or f"exit status {result.exit_status}"
    return act


# --- confirmation (magic rollback) ----------------------------------------------------------------
async def confirm(conn: Connection, generation: int, previous: int, timeout: float | None = None) -> str:
    """Over a new connection: keep `generation`. Answers confirmed, reverted PREV RC, superseded or busy."""
    result = await conn.run(_script(CONFIRM), str(generation), str(previous), timeout=timeout)
    return result.text.strip() or f"no answer (exit status {result.exit_status})"


async def outcome(conn: Connection, generation: int, previous: int, limit: float) -> str:
    """Wait (at most `limit` s) while `generation` awaits confirmation: reverted PREV RC, kept or pending."""
    result = await conn.run(_script(OUTCOME), str(generation), str(previous), str(int(limit) + 1),
                            timeout=limit + 10)
    return result.text.strip()


@dataclass
class Found:
    """What became of a generation whose activation's answer was lost (FIND)."""

    generation: int | None = None
    running: bool = False  # the host's deploy lock is held: an activation may still be running
    current: bool = False
    pending: tuple[int, int] | None = None
    reverted: int | None = None
    failed: str | None = None


async def find(conn: Connection, gen_id: str, timeout: float | None = None) -> Found:
    result = await conn.run(_script(FIND), gen_id, timeout=timeout)
    found = Found()
    for line in result.text.splitlines():
        w = line.split()
        if len(w) == 4 and w[0] == "generation" and w[1].isdigit():
            found.generation, found.running, found.current = int(w[1]), w[2] == "locked", w[3] == "current"
        elif len(w) == 3 and w[0] == "pending" and w[1].isdigit() and w[2].isdigit():
            found.pending = (int(w[1]), int(w[2]))
        elif len(w) >= 2 and w[0] == "reverted" and w[1].isdigit():
            found.reverted = int(w[1])
        elif len(w) >= 2 and w[0] == "failed":
            found.failed = w[1]
    return found


# --- generations, manifests, objects --------------------------------------------------------------
@dataclass(frozen=True)
class HostGeneration:
    number: int
    id: str
    activated: str | None
    current: bool
    failed: str | None = None  # the step or check that failed, or "unconfirmed" (switched back)

    def to_json(self) -> dict[str, object]:
        return {"generation": self.number, "id": self.id, "activated": self.activated, "current": self.current,
                "failed": self.failed}


@dataclass
class HostGenerations:
    items: list[HostGeneration] = field(default_factory=list)
    journal: int | None = None

    @property
    def current(self) -> HostGeneration | None:
        return next((g for g in self.items if g.current), None)


async def generations(conn: Connection, timeout: float | None = None) -> HostGenerations:
    result = await conn.run(_script(GENERATIONS), timeout=timeout)
    if result.exit_status != 0:
        raise _failure(conn, "listing generations", result)
    return parse_generations(result.text)


def parse_generations(text: str) -> HostGenerations:
    out = HostGenerations()
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "journal" and words[1].isdigit():
            out.journal = int(words[1])
        elif len(words) in (4, 5) and words[0].isdigit():
            failed = words[4] if len(words) == 5 and words[4] != "-" else None
            out.items.append(HostGeneration(int(words[0]), words[1], None if words[2] == "-" else words[2],
                                            words[3] == "current", failed))
    return out


async def read_manifest(conn: Connection, number: int, timeout: float | None = None) -> bytes:
    result = await conn.run(_script(READ_MANIFEST), str(number), timeout=timeout)
    if result.exit_status != 0:
        raise _failure(conn, f"reading the manifest of generation {number}", result)
    return result.stdout


async def read_objects(conn: Connection, ids: list[str], timeout: float | None = None) -> dict[str, bytes]:
    """Objects the host has, by id (missing ones are left out)."""
    if not ids:
        return {}
    result = await conn.run(_script(READ_OBJECTS), *ids, timeout=timeout)
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(result.stdout), mode="r:") as tar:
            for member in tar.getmembers():
                fh = tar.extractfile(member)
                if fh is not None:
                    out[member.name] = fh.read()
    except tarfile.TarError:
        pass
    return out
