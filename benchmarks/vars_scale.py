"""Vars at scale: generate every var of a 100-machine WireGuard instance.

A clan with one instance of the bundled `wireguard` service: 1 controller and N-1 peers
(default N = 100). Each run starts from a fresh copy of the clan with no vars and no machine
keys, and runs `pyclan vars generate` in a new process: it evaluates the inventory, creates N
machine age keys (private halves encrypted to the admin), runs N key-pair generators and
stores N public keys plus N secrets encrypted to machine + admin, each generator atomically.
Reported: the median wall time of the whole command over the runs, and of `vars check`
afterwards (which decrypts every secret to verify it).

    python benchmarks/vars_scale.py [--machines 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def pyclan() -> list[str]:
    exe = Path(sys.executable).parent / "pyclan"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from pyclan.cli.main import run; run()"]


def make_clan(root: Path, n: int) -> None:
    machines: dict[str, dict[str, object]] = {f"m{i:03d}": {} for i in range(n)}
    peers: dict[str, dict[str, object]] = {m: {} for m in list(machines)[1:]}
    inventory = {
        "meta": {"name": f"vars{n}"},
        "machines": machines,
        "instances": {
            "mesh": {
                "module": {"name": "wireguard"},
                "roles": {
                    "controller": {"machines": {"m000": {"settings": {"endpoint": "vpn.example.org"}}}},
                    "peer": {"machines": peers},
                },
            }
        },
    }
    root.mkdir(parents=True)
    (root / "inventory.json").write_text(json.dumps(inventory))


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def measure(n: int, runs: int) -> dict[str, float]:
    gen_times, check_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        template = Path(tmp) / "template"
        make_clan(template, n)
        env = {**os.environ, "PYCLAN_AGE_KEY_FILE": str(Path(tmp) / "admin.key")}
        timed([*pyclan(), "-C", str(template), "vars", "keygen", "--user", "bench"], env)
        for i in range(runs):
            clan = Path(tmp) / f"run{i}"
            shutil.copytree(template, clan)
            gen_times.append(timed([*pyclan(), "-C", str(clan), "vars", "generate"], env))
            check_times.append(timed([*pyclan(), "-C", str(clan), "vars", "check"], env))
            secrets = len(list((clan / "vars").rglob("secret.age")))
            if secrets != n:
                raise SystemExit(f"expected {n} secrets, found {secrets}")
        startup = statistics.median(
            timed([*pyclan(), "-C", str(template), "vars", "list", "m000"], env) for _ in range(runs)
        )
    return {
        "generate": statistics.median(gen_times),
        "check": statistics.median(check_times),
        "startup": startup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    m = measure(args.machines, args.runs)
    print(
        f"{args.machines} machines (wireguard, 1 controller): `vars generate` {m['generate']:.2f} s, "
        f"`vars check` {m['check']:.2f} s (median of {args.runs}; "
        f"process start + inventory load alone ≈ {m['startup']:.2f} s)"
    )


if __name__ == "__main__":
    main()
