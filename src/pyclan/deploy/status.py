"""`machines status`: what each host runs compared with what the clan evaluates to, and drift.

One round trip per host, read-only: the deployed generation, and everything on the host that no
longer matches it — managed files edited, replaced or removed by hand (each file's content, mode
and owner against the generation's `files.list`), managed links gone (`systemctl disable` deletes
enablement links), units that failed or were stopped, packages removed. Nothing is changed.
The check itself is the packaged `build/drift.sh`, which the update's probe runs as well (a
plain update repairs what it finds) and the activation uses to verify a generation's tree.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyclan.build.activation import DRIFT
from pyclan.build.generation import build
from pyclan.build.layout import HOST_ROOT
from pyclan.deploy.connection import Connection, Connector, ssh
from pyclan.deploy.targets import resolve_target
from pyclan.deploy.transport import CONNECT_TIMEOUT, HostKeyCheck
from pyclan.errors import ClanError

if TYPE_CHECKING:
    from pyclan.clan import Clan

# The drift of the current generation, as `drift KIND WHAT` lines: appended to the update's probe
# (same round trip) and to STATUS, which both set R and `cur` (the current generation's number).
DRIFT_OF_CURRENT = DRIFT + r"""
export LC_ALL=C
if [ -z "${cur+set}" ]; then cur=$(readlink "$R/current" 2>/dev/null || true); cur=${cur##*/}; fi
if [ -n "$cur" ] && [ -f "$R/generations/$cur/files.list" ]; then
    W=$(mktemp -d)
    drift "$R/generations/$cur" "$W" | sed 's/^/drift /'
    rm -rf "$W"
fi
"""

STATUS = r"""
R=__ROOT__
export LC_ALL=C
cur=$(readlink "$R/current" 2>/dev/null || true); cur=${cur##*/}
[ -n "$cur" ] && [ -f "$R/generations/$cur/id" ] || { echo never; exit 0; }
G=$R/generations/$cur
echo "current $cur $(cat "$G/id")"
if [ -f "$R/journal" ]; then echo "journal $(cat "$R/journal")"; fi
if [ -f "$R/pending" ]; then echo "pending $(cat "$R/pending")"; fi
[ -f "$G/files.list" ] || echo "old-generation"
""".replace("__ROOT__", HOST_ROOT) + DRIFT_OF_CURRENT

_KINDS = {"modified": "changed by hand", "replaced": "replaced by hand", "removed": "removed",
          "mode": "mode or owner changed", "failed-unit": "unit failed", "stopped-unit": "unit stopped",
          "missing-package": "package removed"}  # fmt: skip


def drift_line(kind: str, what: str) -> str:
    """One drift item as a person reads it: `changed by hand: /etc/motd`."""
    return f"{_KINDS.get(kind, kind)}: {what}"


@dataclass
class HostStatus:
    machine: str
    target: str | None = None
    state: str = "unreachable"  # up to date, outdated, never deployed, unreachable, unknown
    generation: int | None = None
    deployed_id: str | None = None
    wanted_id: str | None = None
    drift: list[tuple[str, str]] = field(default_factory=list)  # (kind, path / unit / package)
    note: str | None = None
    error: str | None = None

    def lines(self) -> list[str]:
        return [drift_line(kind, what) for kind, what in self.drift]

    def to_json(self) -> dict[str, Any]:
        return {"machine": self.machine, "target": self.target, "state": self.state, "generation": self.generation,
                "deployed_id": self.deployed_id, "wanted_id": self.wanted_id,
                "drift": [{"kind": k, "what": w} for k, w in self.drift], "note": self.note, "error": self.error}


def parse_drift(lines: Sequence[str]) -> list[tuple[str, str]]:
    """`KIND WHAT` lines of the host's drift check → (kind, what a person reads)."""
    out: list[tuple[str, str]] = []
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "mode" and rest.count(" ") >= 3:
            mode, owner, group, path = rest.split(" ", 3)
            out.append(("mode", f"{path} (now {mode} {owner}:{group})"))
        elif kind in _KINDS:
            out.append((kind, rest))
    return out


def drift_path(kind: str, what: str) -> str | None:
    """The managed path a drift item is about (None for units and packages)."""
    if kind in ("modified", "removed", "replaced"):
        return what
    if kind == "mode":
        return what.rsplit(" (now ", 1)[0]
    return None


def parse_status(machine: str, text: str, wanted: str | None) -> HostStatus:
    st = HostStatus(machine, wanted_id=wanted)
    st.drift = parse_drift([line[6:] for line in text.splitlines() if line.startswith("drift ")])
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "never":
            st.state = "never deployed"
        elif kind == "current":
            number, _, gen_id = rest.partition(" ")
            st.generation, st.deployed_id = int(number), gen_id
            st.state = "unknown" if wanted is None else ("up to date" if gen_id == wanted else "outdated")
        elif kind == "journal":
            st.note = f"the activation of generation {rest} did not finish"
        elif kind == "pending":
            st.note = f"generation {rest.split()[0]} awaits its confirmation"
        elif kind == "old-generation":
            st.note = "deployed by an older pyclan: files were not checked"
    return st


READ_FILES = r"""
tar -c -h -P -f - -- "$@" 2>/dev/null || true
"""


async def read_host_files(conn: Connection, paths: Sequence[str], timeout: float | None = None) -> dict[str, bytes]:
    """What the host has at `paths` now, following symlinks (absent ones are left out); never called
    with a secret's path."""
    if not paths:
        return {}
    result = await conn.run(READ_FILES, *paths, timeout=timeout)
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(result.stdout), mode="r:") as tar:
            for member in tar.getmembers():
                fh = tar.extractfile(member) if member.isfile() else None
                if fh is not None:
                    out["/" + member.name.lstrip("/")] = fh.read()
    except tarfile.TarError:
        pass
    return out


async def drift_of(conn: Connection, machine: str, wanted: str | None, timeout: float = 60) -> HostStatus:
    """The status of the host behind `conn` (one round trip)."""
    result = await conn.run(STATUS, timeout=timeout)
    st = parse_status(machine, result.text, wanted)
    st.target = str(conn.target)
    if result.exit_status != 0:
        st.error = result.error_text or f"exit status {result.exit_status}"
    return st


async def _one(clan: Clan, machine: str, check: HostKeyCheck, timeout: float, connector: Connector) -> HostStatus:
    try:
        wanted: str | None = build(clan, machine, write=False).id
    except ClanError:
        wanted = None  # e.g. vars not generated yet: the drift can still be shown
    try:
        target = resolve_target(clan, machine, None)
    except ClanError as exc:
        return HostStatus(machine, wanted_id=wanted, error="; ".join(p.message for p in exc.problems))
    try:
        async with await connector(target, check, timeout) as conn:
            return await drift_of(conn, machine, wanted)
    except ClanError as exc:
        return HostStatus(machine, str(target), wanted_id=wanted, error="; ".join(p.message for p in exc.problems))


def status(clan: Clan, machines: Sequence[str], check: HostKeyCheck = HostKeyCheck.STRICT,
           connect_timeout: float = CONNECT_TIMEOUT, jobs: int = 32, connector: Connector = ssh) -> list[HostStatus]:
    """Every machine's status, in parallel (an unreachable host is one of the answers)."""
    limit = asyncio.Semaphore(max(1, jobs))

    async def one(machine: str) -> HostStatus:
        async with limit:
            return await _one(clan, machine, check, connect_timeout, connector)

    async def every() -> list[HostStatus]:
        return list(await asyncio.gather(*(one(m) for m in machines)))

    return asyncio.run(every())
