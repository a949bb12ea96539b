"""The floor for evaluating an inventory in pure Python: what `resolve --json` cannot beat.

json.loads of inventory.json, then one walk per (machine × instance × role): members from the
role's machines and tags, settings merged as role → tag → machine (dicts merged, lists
concatenated, scalars replaced), one output dict per membership, and json.dumps of the result.
The garbage collector is off, as in pyclan's loops.
No validation, no errors, no defaults from the services' interfaces: pyclan does all of that,
so pyclan's figure divided by this one says how much its extra work costs.

    python benchmarks/floor.py CLAN_DIR     # prints {"seconds": …, "cpu": …, "machines": …}
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any


def merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        return a + b
    return b


def evaluate(inventory: dict[str, Any]) -> dict[str, Any]:
    machines = inventory.get("machines", {})
    by_tag: dict[str, list[str]] = {"all": list(machines)}
    for name, m in machines.items():
        for tag in m.get("tags", []):
            by_tag.setdefault(tag, []).append(name)
    out: dict[str, Any] = {m: {"tags": machines[m].get("tags", []), "instances": {}} for m in sorted(machines)}
    members_out: dict[str, dict[str, list[str]]] = {}
    for iname, inst in sorted(inventory.get("instances", {}).items()):
        module = inst.get("module", {})
        members_out[iname] = {}
        for rname, role in sorted(inst.get("roles", {}).items()):
            role_settings = role.get("settings", {})
            tag_settings: dict[str, list[Any]] = {}
            for tag, spec in role.get("tags", {}).items():
                for m in by_tag.get(tag, []):
                    tag_settings.setdefault(m, []).append(spec.get("settings", {}))
            named = role.get("machines", {})
            members = sorted(set(tag_settings) | set(named))
            members_out[iname][rname] = members
            for m in members:
                settings = role_settings
                for extra in tag_settings.get(m, []):
                    settings = merge(settings, extra)
                if m in named:
                    settings = merge(settings, named[m].get("settings", {}))
                entry = out[m]["instances"].setdefault(
                    iname, {"service": module.get("name", iname), "input": module.get("input"), "roles": {}}
                )
                entry["roles"][rname] = {"settings": settings}
    return {"machines": out, "members": members_out, "checks": [], "warnings": []}


def main() -> None:
    clan = Path(sys.argv[1])
    gc.disable()  # the same condition pyclan evaluates under (its loops run with the GC paused)
    t0, c0 = time.perf_counter(), time.process_time()
    inventory = json.loads((clan / "inventory.json").read_text())
    text = json.dumps(evaluate(inventory))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "bytes": len(text), "rss_mib": rss_mib,
                      "machines": len(inventory.get("machines", {}))}))  # fmt: skip


if __name__ == "__main__":
    main()
