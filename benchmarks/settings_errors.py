"""Settings error reporting at scale: a long list with thousands of bad entries (issue 10 item 10).

Two shapes, N bad entries each; the time to merge and report every problem must grow linearly
with N (the old engine replayed the list merge for every bad entry, quadratic):

- `strings`: 2N endpoint strings, every other one violating the option's pattern (a pydantic
  constraint, explained by the pydantic-error path), split over the role, machine and two tag blocks;
- `peers`: one block with a list of N peer models whose `port` is 0 (below its minimum), about
  17 bytes each (3,200 entries: 55 KB, the issue's case).

    python benchmarks/settings_errors.py [--sizes 800 1600 3200 6400] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from pyclan.settings.merge import SettingsDef, merge_settings

Endpoint = Annotated[str, StringConstraints(pattern=r"^[a-z0-9.-]+:[0-9]+$")]
INST = "instances.vpn.roles.peer"
PATH = f"{INST}.machines.jon.settings"


class Peer(BaseModel):
    host: str
    port: int = Field(default=51820, ge=1)


class Settings(BaseModel):
    endpoints: list[Endpoint] = []
    peers: list[Peer] = []


def make_defs(bad: int) -> list[SettingsDef]:
    """`2 * bad` entries, `bad` of them invalid, spread over four blocks (about 17 bytes each)."""
    entries = []
    for i in range(bad):
        entries.append(f"host{i:05d}.lan:51820")
        entries.append(f"BAD host {i:05d}!")
    quarter = len(entries) // 4
    parts = [entries[k * quarter : (k + 1) * quarter] for k in range(3)] + [entries[3 * quarter :]]
    return [
        SettingsDef({"endpoints": parts[0]}, f"{INST}.settings", "clan.toml"),
        SettingsDef({"endpoints": parts[1]}, PATH, "clan.toml"),
        SettingsDef({"endpoints": parts[2]}, f"{INST}.tags.a.settings", "clan.toml"),
        SettingsDef({"endpoints": parts[3]}, f"{INST}.tags.b.settings", "clan.toml"),
    ]


def make_peer_defs(bad: int) -> list[SettingsDef]:
    peers = [{"host": f"h{i:04d}", "port": 0} for i in range(bad)]
    return [SettingsDef({"peers": peers}, f"{INST}.settings", "clan.toml")]


def measure(bad: int, runs: int, shape: str = "strings") -> tuple[float, int, int]:
    defs = make_defs(bad) if shape == "strings" else make_peer_defs(bad)
    size = len(json.dumps([d.value for d in defs]))
    times = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        model, problems = merge_settings(Settings, defs, PATH)
        times.append(time.perf_counter() - start)
        assert model is None
        count = len(problems)
    return statistics.median(times), count, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[800, 1600, 3200, 6400])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for shape in ("strings", "peers"):
        for bad in args.sizes:
            seconds, count, size = measure(bad, args.runs, shape)
            print(
                f"{shape:8s} {bad:6d} bad entries ({size / 1024:.0f} KB): {seconds:.3f}s, {count} problems, "
                f"{seconds / max(count, 1) * 1e6:.0f} us per problem"
            )


if __name__ == "__main__":
    main()
