"""What pyclan remembers about its local hosts: one JSON file per host, plus known_hosts.

The state is the only link between a host and the kernel objects it owns, so it is written
before those objects are created and removed after they are gone; writes are atomic.
known_hosts is always regenerated from the state files, so it can never drift.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyclan.hosts.config import HostsConfig
from pyclan.hosts.system import atomic_write


@dataclass(frozen=True)
class HostInfo:
    """A local host as the deploy code and `pyclan hosts status` see it."""

    name: str
    index: int
    address: str
    host_key: str
    running: bool
    pid: int | None
    user: str = "root"

    @property
    def target_host(self) -> str:
        """`user@address`, as `deploy.targetHost` would spell it."""
        return f"{self.user}@{self.address}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "target_host": self.target_host}


@dataclass
class HostState:
    """The persistent record of one host (internal; `HostInfo` is the public view)."""

    name: str
    index: int
    address: str
    netns: str
    veth: str
    host_key: str = ""
    pid: int | None = None
    pid_start: int | None = None
    phase: str = "starting"  # starting -> running
    created: float = field(default_factory=time.time)

    def info(self, running: bool) -> HostInfo:
        return HostInfo(self.name, self.index, self.address, self.host_key, running, self.pid)


def save(cfg: HostsConfig, state: HostState) -> None:
    atomic_write(cfg.state_file(state.name), json.dumps(asdict(state), indent=2) + "\n")


def load(cfg: HostsConfig, name: str) -> HostState | None:
    """The state of `name`, or None if absent or unreadable (a torn write cannot happen)."""
    try:
        data = json.loads(cfg.state_file(name).read_text())
        return HostState(**data)
    except (OSError, ValueError, TypeError):
        return None


def load_all(cfg: HostsConfig) -> list[HostState]:
    if not cfg.hosts_dir.is_dir():
        return []
    states = (load(cfg, p.stem) for p in sorted(cfg.hosts_dir.glob("*.json")))
    return sorted((s for s in states if s is not None), key=lambda s: s.index)


def delete(cfg: HostsConfig, name: str) -> None:
    cfg.state_file(name).unlink(missing_ok=True)


def free_index(states: list[HostState], max_index: int) -> int | None:
    used = {s.index for s in states}
    return next((i for i in range(1, max_index + 1) if i not in used), None)


def write_known_hosts(cfg: HostsConfig, states: list[HostState] | None = None) -> Path:
    """Regenerate known_hosts (`<address> ssh-ed25519 …`) from the hosts' state."""
    states = load_all(cfg) if states is None else states
    lines = [f"{s.address} {s.host_key}\n" for s in sorted(states, key=lambda s: s.index) if s.host_key]
    atomic_write(cfg.known_hosts, "".join(lines))
    return cfg.known_hosts


def key_of(pubkey_line: str) -> str:
    """`ssh-ed25519 AAAA… comment` -> `ssh-ed25519 AAAA…`."""
    return " ".join(pubkey_line.split()[:2])
