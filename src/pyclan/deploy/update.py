"""`machines update / install / rollback / generations` as library functions.

Update: constraint checks (unless disabled) → missing vars generated → every machine built →
every host in parallel: connect once, probe, and if the host is not already on the
generation, upload what it lacks and activate (see remote.py), then confirm over a new
connection (see confirm.py). The probe also checks the host for drift (status.py): what was
changed by hand is repaired by activating with `repair` (no step skipped) and reported as
`repaired`. A host that is up to date and did not drift costs one round trip and reports
`changed: false`. A failed activation or health check is rolled back on the host itself and
reported with the failing step's output; so is a host that cannot be reached afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pyclan.build.generation import Generation, build, empty_generation
from pyclan.build.manifest import Manifest
from pyclan.build.secrets import secret_values
from pyclan.deploy import remote
from pyclan.deploy.changes import Changes, FileChange
from pyclan.deploy.confirm import ACTIVATION_TIMEOUT, CONFIRM_TIMEOUT, STEP_TIMEOUT, Safety, activate
from pyclan.deploy.connection import Connection, Connector, ssh
from pyclan.deploy.diff import compare, needed_old_objects, text_diff
from pyclan.deploy.runner import HostReport, Progress, error_report, no_progress, plan_batches, run_batches
from pyclan.deploy.status import DRIFT_OF_CURRENT, drift_line, drift_path, parse_drift, read_host_files
from pyclan.deploy.targets import clan_host_keys, resolve_target, resolve_targets
from pyclan.deploy.transport import CONNECT_TIMEOUT, HostKeyCheck, Target, parse_target
from pyclan.errors import ClanError

if TYPE_CHECKING:
    from pyclan.clan import Clan

DEFAULT_JOBS = 32


@dataclass
class UpdateOptions:
    dry_run: bool = False
    jobs: int = DEFAULT_JOBS
    target_host: str | None = None
    host_key_check: HostKeyCheck = HostKeyCheck.STRICT
    check: bool = True  # enforce the inventory's constraint checks
    generate_vars: bool = True
    sandbox: bool = True  # run vars generator scripts in a sandbox
    yes: bool = False  # accept a change of vars recipients (keys added/removed)
    connect_timeout: float = CONNECT_TIMEOUT
    debug: bool = False
    timeout: float = STEP_TIMEOUT  # deadline of each short remote step (probe, confirmation, …)
    activation_timeout: float = ACTIVATION_TIMEOUT  # deadline of upload + activation
    rollback: bool = True  # a failed step or health check switches the host back (--no-rollback: kept)
    confirm_timeout: int = CONFIRM_TIMEOUT  # magic rollback's deadline; 0 turns it off
    canary: int = 0  # these first machines alone, before all others
    batch_size: int | None = None  # then batches of this many (None: all the rest at once)
    max_failures: int | None = None  # no new batch once this many hosts failed (None: never stop)
    network: str | None = None  # --network: reach machines over this network only
    connector: Connector = ssh  # how hosts are reached (tests: pyclan.deploy.local's private roots)

    @property
    def safety(self) -> Safety:
        return Safety(self.host_key_check, self.connect_timeout, self.timeout, self.rollback, self.confirm_timeout,
                      self.activation_timeout, self.connector)


def prepare(clan: Clan, machines: Sequence[str], opts: UpdateOptions) -> None:
    """What must hold before any host is touched: checks pass, vars exist."""
    if opts.check:
        from pyclan.services.constraints import enforce

        enforce(clan.resolved.checks, "`pyclan machines update`")
    if opts.generate_vars and not opts.dry_run:
        from pyclan.vars.api import generate_missing

        generate_missing(clan, machines, sandbox=opts.sandbox, yes=opts.yes)


def build_all(clan: Clan, machines: Iterable[str]) -> tuple[dict[str, Generation], dict[str, HostReport]]:
    """Build every machine; a machine whose build fails gets a failed report instead."""
    built: dict[str, Generation] = {}
    failed: dict[str, HostReport] = {}
    for m in machines:
        try:
            built[m] = build(clan, m)
        except ClanError as exc:
            failed[m] = error_report(m, exc)
    return built, failed


async def _changes(conn: Connection, gen: Generation, probe: remote.Probe, timeout: float) -> HostReport:
    old: Manifest | None = None
    if probe.current is not None:
        old = Manifest.from_bytes(await remote.read_manifest(conn, probe.current, timeout))
    old_objects = await remote.read_objects(conn, needed_old_objects(old, gen.manifest), timeout)
    changes = compare(old, gen.manifest, old_objects, gen.objects)
    return HostReport(gen.machine, str(conn.target), changed=not changes.empty(), generation=probe.current,
                      id=gen.id, changes=changes)


async def update_host(
    clan: Clan, gen: Generation, target: Target, opts: UpdateOptions, progress: Progress = no_progress
) -> HostReport:
    """Bring one host to `gen` (or, with dry_run, say what that would change), repairing drift."""
    m = gen.machine
    progress(m, f"connecting to {target}")
    async with await opts.connector(target, opts.host_key_check, opts.connect_timeout) as conn:
        progress(m, "comparing")
        probe = await remote.probe(conn, gen.manifest.object_ids(), opts.timeout, extra=DRIFT_OF_CURRENT)
        if probe.pending is not None and not opts.dry_run:
            # an earlier run activated it but never confirmed (killed?): this connection is new, so confirm
            answer = await remote.confirm(conn, *probe.pending, timeout=opts.timeout)
            progress(m, f"generation {probe.pending[0]} awaited confirmation: {answer}")
            probe = await remote.probe(conn, gen.manifest.object_ids(), opts.timeout, extra=DRIFT_OF_CURRENT)
        drift = parse_drift(probe.drift) if probe.journal is None else []
        if probe.up_to_date(gen.id) and not drift:
            return HostReport(m, str(target), changed=False, generation=probe.current, id=gen.id)
        if opts.dry_run:
            return await _dry_run(conn, gen, probe, drift, opts.timeout)
        report = await _activate(clan, conn, target, gen, probe, bool(drift), opts, progress)
        if drift and report.ok:
            report.extra["repaired"] = [drift_line(kind, what) for kind, what in drift]
        return report


async def _activate(
    clan: Clan, conn: Connection, target: Target, gen: Generation, probe: remote.Probe, repair: bool,
    opts: UpdateOptions, progress: Progress,
) -> HostReport:
    """Activate `gen`: finish an interrupted activation, repair the current one, or upload it."""
    m = gen.machine
    if probe.journal is not None and probe.journal_id == gen.id:
        progress(m, f"finishing the interrupted activation of generation {probe.journal}")
        return await activate(conn, target, gen.id, opts.safety, progress, existing=probe.journal)
    if probe.current_id == gen.id and probe.current is not None:
        what = "repairing what was changed by hand on" if repair else "finishing the activation of"
        progress(m, f"{what} generation {probe.current}")
        return await activate(conn, target, gen.id, opts.safety, progress, existing=probe.current, repair=repair)
    secrets = secret_values(clan, m, gen.config) if gen.config is not None else {}
    first = empty_generation(m) if probe.current is None else None
    data = remote.payload(gen, list(probe.missing), secrets, first)
    progress(m, f"activating (sent {len(probe.missing)} objects, {len(data) // 1024} KiB)")
    return await activate(conn, target, gen.id, opts.safety, progress, data=data, repair=repair)


async def _dry_run(
    conn: Connection, gen: Generation, probe: remote.Probe, drift: list[tuple[str, str]], timeout: float
) -> HostReport:
    """What an update would change: the generations' differences, and the drift it would repair
    (a managed file's drift with a diff from what the host has to what the generation declares)."""
    if probe.up_to_date(gen.id):
        report = HostReport(gen.machine, str(conn.target), changed=True, generation=probe.current, id=gen.id,
                            changes=Changes())
    else:
        report = await _changes(conn, gen, probe, timeout)
    if not drift:
        return report
    report.changed = True
    report.extra["drift"] = [drift_line(kind, what) for kind, what in drift]
    paths = sorted({p for kind, what in drift if (p := drift_path(kind, what)) in gen.manifest.files})
    now = await read_host_files(conn, paths, timeout) if paths and probe.current_id == gen.id else {}
    changes = report.changes if report.changes is not None else Changes()
    for path in paths:
        if path in now:
            declared = gen.objects.get(gen.manifest.files[path].sha256)
            changes.files.append(FileChange(path, "repair", text_diff(path, now[path], declared)))
    report.changes = changes
    return report


def check_override(machines: Sequence[str], override: str | None) -> None:
    """`--target-host` names one machine's host, and a typo in it is a usage error."""
    if override and len(machines) != 1:
        raise ClanError.single("usage-error", "--target-host", "--target-host can only be used with one machine")
    if override:
        parse_target(override, machines[0], "--target-host")


def targets_for(
    clan: Clan, machines: Sequence[str], override: str | None, earlier_keys: dict[str, tuple[str, ...]] | None = None,
    network: str | None = None,
) -> dict[str, Target | ClanError]:
    """Each machine's target (or why it has none); `earlier_keys` are host keys the clan held before
    this command regenerated vars — a host still presents those until it is updated."""
    out = resolve_targets(clan, list(machines), override, network=network)
    for m, target in out.items():
        if not isinstance(target, ClanError):
            extra = tuple(k for k in (earlier_keys or {}).get(m, ()) if k not in target.host_keys)
            out[m] = replace(target, host_keys=target.host_keys + extra)
    return out


def update(
    clan: Clan, machines: Sequence[str], opts: UpdateOptions | None = None, progress: Progress = no_progress
) -> list[HostReport]:
    """Update `machines` in parallel; one report per machine, in order (never raises per host)."""
    opts = opts or UpdateOptions()
    check_override(machines, opts.target_host)
    earlier = {m: clan_host_keys(clan, m) for m in machines}
    prepare(clan, machines, opts)  # first: exports and targets may read the vars it generates
    targets = targets_for(clan, machines, opts.target_host, earlier, opts.network)
    built, failed = build_all(clan, machines)

    async def work(m: str, report: Progress) -> HostReport:
        if m in failed:
            return failed[m]
        target = targets[m]
        if isinstance(target, ClanError):
            raise target
        try:
            return await update_host(clan, built[m], target, opts, report)
        except ClanError as exc:
            failure = error_report(m, exc)
            failure.target = str(target)
            return failure

    batches = plan_batches(list(machines), opts.canary, opts.batch_size)
    limit = opts.max_failures if opts.max_failures is not None else (1 if opts.canary else None)
    return asyncio.run(run_batches(batches, work, opts.jobs, progress, opts.debug, limit))


# --- install ------------------------------------------------------------------------------------
PREFLIGHT = r"""
[ "$(id -u)" = 0 ] || { echo "not-root"; exit 0; }
[ -f /etc/debian_version ] || { echo "not-debian $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"; exit 0; }
command -v apt-get >/dev/null 2>&1 || { echo "no-apt"; exit 0; }
[ -d /run/systemd/system ] || echo "no-systemd"
mkdir -p /var/lib/pyclan/objects /var/lib/pyclan/generations /var/lib/pyclan/state
chmod 755 /var/lib/pyclan /var/lib/pyclan/generations
chmod 700 /var/lib/pyclan/objects /var/lib/pyclan/state
echo "ok $(cat /etc/debian_version)"
"""


async def _preflight(target: Target, check: HostKeyCheck, timeout: float, connector: Connector = ssh) -> str:
    async with await connector(target, check, timeout) as conn:
        result = await conn.run(PREFLIGHT)
    words = result.text.split()
    if not words or result.exit_status != 0:
        raise ClanError.single("deploy-error", f"machines.{target.machine}",
                               f"preparing {target} failed: {result.error_text or result.text}")
    problems = {
        "not-root": "commands do not run as root there",
        "not-debian": "it is not a Debian system (no /etc/debian_version): " + " ".join(words[1:]),
        "no-apt": "it has no apt-get",
    }
    if words[0] in problems:
        raise ClanError.single("deploy-error", f"machines.{target.machine}",
                               f"cannot install on {target}: {problems[words[0]]}",
                               hint="pyclan installs onto Debian (or a derivative) hosts reachable as root")
    return " ".join(words)


def install(clan: Clan, machine: str, opts: UpdateOptions, progress: Progress = no_progress) -> HostReport:
    """First set-up of a fresh Debian host: prepare pyclan's folders, then a first update."""
    target = resolve_target(clan, machine, opts.target_host, network=opts.network)
    progress(machine, f"preparing {target}")
    asyncio.run(_preflight(target, opts.host_key_check, opts.connect_timeout, opts.connector))
    # the key is known now (tofu/ask remembered it); later connections check it strictly
    later = opts.host_key_check if opts.host_key_check is HostKeyCheck.NONE else HostKeyCheck.STRICT
    follow = replace(opts, host_key_check=later)
    return update(clan, [machine], follow, progress)[0]


# --- rollback and generations ---------------------------------------------------------------------
async def _generations(target: Target, check: HostKeyCheck, connector: Connector) -> remote.HostGenerations:
    async with await connector(target, check, CONNECT_TIMEOUT) as conn:
        return await remote.generations(conn, STEP_TIMEOUT)


def generations(clan: Clan, machine: str, target_host: str | None = None,
                check: HostKeyCheck = HostKeyCheck.STRICT, connector: Connector = ssh) -> remote.HostGenerations:
    target = resolve_target(clan, machine, target_host)
    return asyncio.run(_generations(target, check, connector))


async def _rollback(target: Target, to: int | None, opts: UpdateOptions) -> HostReport:
    """Activation of an older generation: the same path as an update (checks, confirmation)."""
    async with await opts.connector(target, opts.host_key_check, opts.connect_timeout) as conn:
        gens = await remote.generations(conn, opts.timeout)
        current = gens.current
        numbers = [g.number for g in gens.items]
        if to is None:
            earlier = [n for n in numbers if current is not None and n < current.number]
            if not earlier:
                raise ClanError.single(
                    "deploy-error", f"machines.{target.machine}",
                    f"{target.machine} has no generation before {current.number if current else 'none'}",
                    hint="`pyclan machines generations " + target.machine + "` lists them",
                )
            to = earlier[-1]
        if to not in numbers:
            raise ClanError.single(
                "deploy-error", f"machines.{target.machine}", f"{target.machine} has no generation {to}",
                hint=f"it has: {', '.join(map(str, numbers)) or 'none'}",
            )
        if current is not None and current.number == to and gens.journal is None:
            return HostReport(target.machine, str(target), changed=False, generation=to, id=current.id)
        ids = {g.number: g.id for g in gens.items}
        return await activate(conn, target, ids.get(to), opts.safety, existing=to)


def rollback(clan: Clan, machine: str, to: int | None = None, target_host: str | None = None,
             check: HostKeyCheck = HostKeyCheck.STRICT, opts: UpdateOptions | None = None) -> HostReport:
    """Switch `machine` back to generation `to` (default: the one before the current)."""
    target = resolve_target(clan, machine, target_host)
    opts = replace(opts or UpdateOptions(), host_key_check=check)
    try:
        return asyncio.run(_rollback(target, to, opts))
    except ClanError as exc:
        report = error_report(machine, exc)
        report.target = str(target)
        return report
