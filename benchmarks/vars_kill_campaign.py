"""SIGKILL campaign: kill `pyclan vars generate --regenerate` at random moments (issue 10).

A test clan (the `vartest` service of tests/vars: machines a, b in a mesh, c alone) has a
shared generator (`ca`), per-machine ones, a script generator (`cert`) that depends on the
shared `ca` and the machine's `wg`, and a persisted prompt. Each trial starts
`vars generate --regenerate` as a real process and SIGKILLs it at a random moment: mostly while it
replaces the store (a random delay, up to the length of that phase in recent runs, after the
first change of `vars/` was seen), sometimes during start-up and evaluation, until 30 trials
killed a running process after it had replaced part of the store (other trials count too, but not
towards the 30). Then:

1. `vars check` must be truthful: every generator it does not report must be consistent — all
   files present, every secret decrypts, and `cert` was derived from the `ca` and `wg` values
   that are stored now (its key is sha256(ca key + wg key)).
2. A plain re-run (`vars generate`, no --regenerate) must succeed, after which `vars check` is
   clean and every generator is consistent.
3. No temporary folder of a generator run (plaintext) is left once the re-run finished.

    python benchmarks/vars_kill_campaign.py [--kills 30] [--seed 1]

Prints one line per trial and a JSON summary; exits 1 if any trial failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SERVICE = Path(__file__).resolve().parents[1] / "tests" / "vars" / "vartest_service.py"
ANSWERS = {"pw": {"password": "correct horse battery staple 42"}}
TOML = """[meta]
name = "kill"

[machines.a]
[machines.b]
[machines.c]

[instances.mesh]
module.name = "vartest"
module.input = "self"
roles.peer.machines.a = {}
roles.peer.machines.b = {}

[instances.alone]
module.name = "vartest"
module.input = "self"
roles.solo.machines.c = {}
"""


def pyclan() -> list[str]:
    exe = Path(sys.executable).parent / "pyclan"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from pyclan.cli.main import run; run()"]


@dataclass
class Campaign:
    root: Path  # holds clan/, the admin key, answers.json and a private TMPDIR
    env: dict[str, str] = field(default_factory=dict)

    @property
    def clan(self) -> Path:
        return self.root / "clan"

    @property
    def tmpdir(self) -> Path:
        return self.root / "tmp"

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*pyclan(), "-C", str(self.clan), *args], env=self.env, capture_output=True,
                              check=False, timeout=timeout)

    def generate_args(self, regenerate: bool) -> list[str]:
        return ["vars", "generate", *(["--regenerate"] if regenerate else []),
                "--prompt-values", str(self.root / "answers.json")]


def setup(root: Path) -> Campaign:
    camp = Campaign(root)
    (camp.clan / "services").mkdir(parents=True)
    shutil.copy(SERVICE, camp.clan / "services" / "vartest.py")
    (camp.clan / "clan.toml").write_text(TOML)
    (root / "answers.json").write_text(json.dumps(ANSWERS))
    camp.tmpdir.mkdir()
    camp.env = {**os.environ, "PYCLAN_AGE_KEY_FILE": str(root / "admin.key"), "TMPDIR": str(camp.tmpdir),
                "HOME": str(root), "COLUMNS": "500"}
    camp.env.pop("CLAN_DIR", None)
    for args in (["vars", "keygen", "--user", "admin"], camp.generate_args(False)):
        done = camp.cli(*args)
        if done.returncode != 0:
            raise SystemExit(f"setup failed: {' '.join(args)}: {done.stderr.decode()}")
    return camp


def inconsistent(camp: Campaign) -> dict[str, str]:
    """Generator label → why it is not consistent with what is stored now (empty: all good)."""
    os.environ["PYCLAN_AGE_KEY_FILE"] = camp.env["PYCLAN_AGE_KEY_FILE"]
    from pyclan.clan import open_clan
    from pyclan.errors import ClanError
    from pyclan.vars.context import VarsContext

    ctx = VarsContext.of(open_clan(camp.clan, {}))
    bad: dict[str, str] = {}
    values: dict[tuple[str, str | None], dict[str, bytes]] = {}
    for key in ctx.graph.nodes:
        try:
            values[(key.name, key.machine)] = ctx.read_all(key)
        except ClanError as err:
            bad[key.label] = err.problems[0].message
    for m in ("a", "b"):
        cert, ca, wg = values.get(("cert", m)), values.get(("ca", None)), values.get(("wg", m))
        if cert is None or ca is None or wg is None:
            continue
        if cert["key"].strip() != hashlib.sha256(ca["key"] + wg["priv"]).hexdigest().encode():
            bad[f"{m}/cert"] = "cert/key was not derived from the stored ca/key and wg/priv"
        elif wg["pub"] not in cert["cert"] or ca["cert"] not in cert["cert"]:
            bad[f"{m}/cert"] = "cert/cert does not name the stored wg/pub and ca/cert"
    for m in ("a", "b"):
        pw = values.get(("pw", m))
        if pw is not None and pw["hash"].strip() != hashlib.sha256(pw["password"]).hexdigest().encode():
            bad[f"{m}/pw"] = "pw/hash does not match the stored password"
    return bad


def reported(check: subprocess.CompletedProcess[bytes]) -> set[str]:
    """Generator labels `vars check --json` reports (any kind of issue)."""
    issues = json.loads(check.stdout)["issues"]
    out = set()
    for issue in issues:
        parts = issue["var"].split("/")
        out.add("/".join(parts[:2]))
    return out


def left_in_clear(camp: Campaign) -> list[str]:
    """Files left in the generator runs' folder (Python's own probe files elsewhere don't count)."""
    return [str(p.relative_to(camp.tmpdir)) for p in camp.tmpdir.glob("pyclan-vars-*/**/*") if not p.is_dir()]


@dataclass
class Trial:
    n: int
    delay: float  # seconds after the start, or after the first write (after_write)
    after_write: bool
    killed: bool  # False: the run finished before the kill
    stored_changed: str  # none / partial / all: how much of vars/ the killed run had replaced
    reported: list[str]
    lies: dict[str, str]  # generators `vars check` called fine that are not
    rerun_ok: bool
    after: dict[str, str]  # inconsistencies after the re-run
    leftovers: list[str]

    @property
    def mid_write(self) -> bool:
        """Killed after the run had replaced some of the store."""
        return self.killed and self.stored_changed != "none"

    @property
    def ok(self) -> bool:
        return not self.lies and self.rerun_ok and not self.after and not self.leftovers


def _hashes(camp: Campaign) -> dict[str, str]:
    """Generator folder → digest of everything in it (a regenerated folder differs)."""
    for _ in range(50):
        try:
            return _hashes_once(camp)
        except OSError:  # a folder swapped while we walked (polling a running generate)
            time.sleep(0.005)
    return {"": "changing"}


def _hashes_once(camp: Campaign) -> dict[str, str]:
    out: dict[str, str] = {}
    for hash_file in (camp.clan / "vars").rglob(".validation-hash"):
        folder = hash_file.parent
        if folder.name.startswith("."):  # a half-built or old folder of a swap, not the store
            continue
        h = hashlib.sha256()
        try:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
        except OSError:  # swapped while we looked (polling a running generate)
            h.update(b"changing")
        out[str(folder.relative_to(camp.clan))] = h.hexdigest()
    return out


@dataclass
class Timing:
    """When runs first changed vars/ and when they ended: the kills aim at that window."""

    firsts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)

    def window(self) -> tuple[float, float]:
        first = sorted(self.firsts[-5:])[len(self.firsts[-5:]) // 2]
        end = sorted(self.ends[-5:])[len(self.ends[-5:]) // 2]
        return first, max(end, first * 1.05)


def watch(camp: Campaign, timing: Timing, delay: float | None, after_write: bool = False) -> subprocess.Popen[bytes]:
    """Run `generate --regenerate`; SIGKILL it `delay` s after its start, or with `after_write`
    `delay` s after its first write was seen (None: let it finish). Learns timings."""
    before = _hashes(camp)
    start = time.monotonic()
    proc = subprocess.Popen([*pyclan(), "-C", str(camp.clan), *camp.generate_args(True)], env=camp.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen_write: float | None = None
    while proc.poll() is None:
        now = time.monotonic() - start
        due = None if delay is None else (delay if not after_write else None if seen_write is None
                                          else seen_write + delay)
        if due is not None and now >= due:
            os.kill(proc.pid, signal.SIGKILL)
            break
        if seen_write is None and _hashes(camp) != before:
            seen_write = now
            timing.firsts.append(now)
        time.sleep(0.01)
    else:
        timing.ends.append(time.monotonic() - start)
    proc.wait()
    return proc


def trial(camp: Campaign, n: int, delay: float, timing: Timing, after_write: bool) -> Trial:
    before = _hashes(camp)
    proc = watch(camp, timing, delay, after_write)
    killed = proc.returncode == -signal.SIGKILL
    after_kill = _hashes(camp)
    changed = sum(1 for k, v in after_kill.items() if before.get(k) != v)
    state = "none" if changed == 0 else "all" if changed == len(after_kill) else "partial"
    check = camp.cli("vars", "check", "--json")
    flagged = reported(check)
    lies = {g: why for g, why in inconsistent(camp).items() if g not in flagged}
    rerun = camp.cli(*camp.generate_args(False))
    final_check = camp.cli("vars", "check")
    after = inconsistent(camp)
    if final_check.returncode != 0:
        after["vars check"] = final_check.stdout.decode()[:500]
    return Trial(n, round(delay, 3), after_write, killed, state, sorted(flagged), lies,
                 rerun.returncode == 0, after, left_in_clear(camp))


def calibrate(camp: Campaign) -> Timing:
    """Three uninterrupted runs; later trials that finish before their kill refine the timing."""
    timing = Timing()
    for _ in range(3):
        proc = watch(camp, timing, None)
        if proc.returncode != 0:
            raise SystemExit(f"an uninterrupted run failed: {proc.stderr.read() if proc.stderr else ''!r}")
    if not timing.firsts:
        timing.firsts.append(timing.ends[0] / 2)
    return timing


def run_campaign(root: Path, kills: int, seed: int, say: Any = print, max_trials: int | None = None) -> list[Trial]:
    """Trials until `kills` of them killed the run while it was replacing the store (after its first
    write, before it finished); at most 5 × kills trials."""
    camp = setup(root)
    timing = calibrate(camp)
    first_write, end = timing.window()
    say(f"an uninterrupted run first writes after {first_write:.2f}s and ends after {end:.2f}s")
    rng = random.Random(seed)
    results: list[Trial] = []
    limit = 5 * kills if max_trials is None else max_trials
    while sum(t.mid_write for t in results) < kills and len(results) < limit:
        n = len(results)
        first_write, end = timing.window()
        if rng.random() < 0.2:  # now and then during start-up and evaluation
            t = trial(camp, n, rng.uniform(0.3 * first_write, first_write), timing, after_write=False)
        else:  # mostly while the store is being replaced: after the first write was seen
            t = trial(camp, n, rng.uniform(0, end - first_write), timing, after_write=True)
        results.append(t)
        when = f"{t.delay:.2f}s after the first write" if t.after_write else f"{t.delay:.2f}s after the start"
        say(f"trial {n:3d}: kill {when} {'(finished first)' if not t.killed else ''} "
            f"store={t.stored_changed} check reported {len(t.reported)} generator(s); "
            f"{'ok' if t.ok else 'FAILED ' + json.dumps(asdict(t))}")
    return results


def summary(results: list[Trial]) -> dict[str, Any]:
    return {
        "trials": len(results),
        "killed_mid_run": sum(t.killed for t in results),
        "killed_mid_write": sum(t.mid_write for t in results),
        "store_partial": sum(t.stored_changed == "partial" for t in results),
        "store_none": sum(t.stored_changed == "none" for t in results),
        "store_all": sum(t.stored_changed == "all" for t in results),
        "check_untruthful": sum(bool(t.lies) for t in results),
        "rerun_failed": sum(not t.rerun_ok for t in results),
        "inconsistent_after_rerun": sum(bool(t.after) for t in results),
        "plaintext_left_after_rerun": sum(bool(t.leftovers) for t in results),
        "ok": all(t.ok for t in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30, help="trials that must kill a running generate")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyclan-kill-") as tmp:
        results = run_campaign(Path(tmp), args.kills, args.seed)
    report = summary(results)
    print(json.dumps(report, indent=2))
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
