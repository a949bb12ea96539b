"""What one host costs per update, in-process (no start-up): no-op vs one file changed.

The same workload as `deploy_scale.py` (10 files, a user, an enabled unit) on N local hosts;
`pyclan.deploy.update.update` is called in this process, so the figures are the per-host time
of the update itself (connect, probe, upload, activation, confirmation), median of the runs,
with no-op and one-file-change runs interleaved — and, since wall time on a loaded machine says
little, the number of processes each update started on a host (the host's last pid before and
after, in its own pid namespace) and the CPU time of its SSH sessions, which depend little on load.

    sudo python benchmarks/activation_cost.py [--hosts 3] [--runs 7] [--confirm-timeout 30]

Hosts use their own bridge: PYCLAN_BENCH_BRIDGE / PYCLAN_BENCH_NET / PYCLAN_BENCH_HOSTS_DIR.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from deploy_scale import write_clan  # the same workload

from pyclan.clan import open_clan
from pyclan.deploy.update import UpdateOptions, update
from pyclan.hosts import control as hosts
from pyclan.hosts.config import HostsConfig


def host_counters(name: str, cfg: HostsConfig) -> tuple[int, float]:
    """The host's most recent pid (its own pid namespace: the difference counts the processes
    started) and the CPU time (ms) of every finished SSH session so far (sshd's children)."""
    [info] = [h for h in hosts.status(config=cfg) if h.name == name]
    script = "cut -d' ' -f5 /proc/loadavg; awk '{ print $16 + $17 }' /proc/$(cat /run/sshd.pid)/stat"
    out = subprocess.run(hosts.ssh_command(info, script, config=cfg), capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1]) * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--confirm-timeout", type=int, default=30)
    args = parser.parse_args()
    env = {
        "PYCLAN_HOSTS_DIR": os.environ.get("PYCLAN_BENCH_HOSTS_DIR", "/tmp/pyclan-bench-hosts"),
        "PYCLAN_HOSTS_BRIDGE": os.environ.get("PYCLAN_BENCH_BRIDGE", "pcbench0"),
        "PYCLAN_HOSTS_NET": os.environ.get("PYCLAN_BENCH_NET", "10.231.60"),
    }
    os.environ.update(env)
    cfg = HostsConfig.from_env(env)
    names = [f"cost-{i:02d}" for i in range(1, args.hosts + 1)]
    opts = UpdateOptions(confirm_timeout=args.confirm_timeout)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PYCLAN_CACHE_DIR"] = str(Path(tmp) / "cache")
        root = Path(tmp) / "clan"
        hosts.up(names, config=cfg)
        try:
            write_clan(root, names, "1")
            assert all(r.ok for r in update(open_clan(root, {}), names, opts))
            noop: list[float] = []
            change: list[float] = []
            forks: dict[str, list[int]] = {"noop": [], "change": []}
            cpu: dict[str, list[float]] = {"noop": [], "change": []}
            for i in range(args.runs):
                before, used = host_counters(names[0], cfg)
                reports = update(open_clan(root, {}), names, opts)
                after, now = host_counters(names[0], cfg)
                forks["noop"].append(after - before - 4)  # less the counting's own processes
                cpu["noop"].append(now - used)
                assert all(r.ok and not r.changed for r in reports), reports
                noop += [r.seconds for r in reports]
                write_clan(root, names, str(i + 2))
                before, used = host_counters(names[0], cfg)
                last = update(open_clan(root, {}), names, opts)
                after, now = host_counters(names[0], cfg)
                forks["change"].append(after - before - 4)
                cpu["change"].append(now - used)
                assert all(r.ok and r.changed for r in last), last
                change += [r.seconds for r in last]
        finally:
            hosts.down(names, config=cfg)
    print(f"{args.hosts} hosts, {args.runs} runs, confirm timeout {args.confirm_timeout} s: "
          f"no-op {statistics.median(noop) * 1000:.0f} ms/host ({statistics.median(forks['noop']):.0f} processes, "
          f"{statistics.median(cpu['noop']):.0f} ms CPU on the host), one file changed "
          f"{statistics.median(change) * 1000:.0f} ms/host ({statistics.median(forks['change']):.0f} processes, "
          f"{statistics.median(cpu['change']):.0f} ms CPU)")


if __name__ == "__main__":
    main()
