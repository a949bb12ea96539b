"""One activation from the controller's side: apply, then confirm it over a new connection.

`apply` (remote.py) activates on the host, which switches back by itself when a step or a
health check fails. When the activation succeeded, the host has also armed a timer that
switches back unless the controller proves, over a NEW SSH connection, that it can still reach
the host (magic rollback). This module does that, and turns every outcome into a HostReport:

- confirmed: the update stands;
- no new connection before the deadline: the host switches back by itself; the controller
  watches that happen over the old connection (or a new one afterwards) and reports
  "rolled back: host unreachable after activation";
- the answer of `apply` was lost (connection broke, step deadline): a new connection asks the
  host what became of the generation (still running, failed, pending, switched back), and
  confirms it if it is only waiting for that.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from pyclan.deploy import remote
from pyclan.deploy.connection import Connection, Connector, ssh
from pyclan.deploy.runner import HostReport, Progress, no_progress
from pyclan.deploy.transport import CONNECT_TIMEOUT, HostKeyCheck, Target
from pyclan.errors import ClanError

#: seconds the controller keeps looking after the host's deadline (the switch back takes a while)
SETTLE = 30.0
STEP_TIMEOUT = 60.0  # probe, confirmation, look-ups: each takes well under a second on a live host
ACTIVATION_TIMEOUT = 900.0  # upload + activation (apt-get may take minutes)
CONFIRM_TIMEOUT = 30


@dataclass(frozen=True)
class Safety:
    """How an activation is guarded (--no-rollback, --confirm-timeout, --timeout, --activation-timeout)."""

    host_key_check: HostKeyCheck = HostKeyCheck.STRICT
    connect_timeout: float = CONNECT_TIMEOUT
    timeout: float = STEP_TIMEOUT  # deadline of each short remote step
    rollback: bool = True
    confirm_timeout: int = CONFIRM_TIMEOUT  # 0: no magic rollback
    activation_timeout: float = ACTIVATION_TIMEOUT  # deadline of upload + activation
    connector: Connector = ssh  # how the new connections (confirmation, look-ups) are opened

    def apply_options(self) -> remote.ApplyOptions:
        return remote.ApplyOptions(self.rollback, self.confirm_timeout, self.activation_timeout)


def _message(exc: ClanError) -> str:
    return "; ".join(p.message for p in exc.problems)


def activation_report(target: Target, gen_id: str | None, act: remote.Activation, rollback: bool = True) -> HostReport:
    report = HostReport(target.machine, str(target), changed=True, generation=act.generation, id=gen_id)
    if act.problem is not None:
        report.changed = False
        report.error = act.problem
        return report
    if act.ok:
        return report
    step = act.failed_step or "start"
    report.step = step
    report.output = act.step_output(step)
    if step.startswith("check:"):
        report.error = f"health check '{step[6:]}' of generation {act.generation} failed"
    else:
        report.error = f"activation of generation {act.generation} failed in step '{step}' (exit status {act.status})"
    if act.rollback_to is not None:
        report.rolled_back_to = act.rollback_to
        if act.rollback_status == 0:
            report.error += f"; the host was switched back to generation {act.rollback_to}"
            report.generation = act.rollback_to
            report.changed = False  # it is on the generation it was on before
        else:
            report.error += f"; switching back to generation {act.rollback_to} failed as well"
            report.output = (report.output or "") + "\n--- rollback ---\n" + act.rollback_log[-4000:]
    elif not rollback:
        report.error += "; the host stays on it for debugging (--no-rollback)"
    else:
        report.error += "; there is no other generation to switch back to (the next update tries again)"
    return report


def _switched_back(report: HostReport, previous: int, why: str) -> HostReport:
    report.error = f"rolled back: host unreachable after activation ({why}); it switched back to generation " \
                   f"{previous} by itself"
    report.generation, report.rolled_back_to, report.changed, report.step = previous, previous, False, "confirm"
    return report


def _unverified(report: HostReport, previous: int, why: str, seconds: int) -> HostReport:
    report.error = (f"host unreachable after activation ({why}): unless it was confirmed it switches back to "
                    f"generation {previous} by itself {seconds} s after the activation; that could not be verified")
    report.rolled_back_to, report.step = previous, "confirm"
    report.extra["activation_may_be_running"] = True
    return report


async def _fresh(target: Target, safety: Safety, limit: float) -> Connection:
    return await safety.connector(target, safety.host_key_check, max(0.5, min(safety.connect_timeout, limit)))


async def confirm_activation(
    conn: Connection, target: Target, safety: Safety, act: remote.Activation, report: HostReport,
    progress: Progress = no_progress,
) -> HostReport:
    """The activation succeeded and awaits confirmation: give it, over a new connection."""
    assert act.armed is not None
    n, previous, seconds = act.armed
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    progress(target.machine, f"confirming generation {n} over a new connection (deadline {seconds} s)")
    why = "no new SSH connection could be made"
    while (left := deadline - loop.time()) > 0:
        try:
            async with await _fresh(target, safety, left) as again:
                answer = await remote.confirm(again, n, previous, timeout=safety.timeout)
        except ClanError as exc:
            why = f"a new SSH connection failed: {_message(exc)}"
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
            continue
        words = answer.split()
        if words[:1] == ["confirmed"] or words[:1] == ["superseded"]:
            return report
        if words[:1] == ["reverted"]:
            return _switched_back(report, previous, "the confirmation came too late")
        why = f"the confirmation was not accepted: {answer}"
        break
    progress(target.machine, f"unreachable: waiting for the host to switch back to generation {previous}")
    try:  # the old connection often still works (sshd keeps established sessions)
        state = await remote.outcome(conn, n, previous, max(0.0, deadline - loop.time()) + SETTLE)
    except ClanError:
        state = ""
    if state.startswith("reverted"):
        return _switched_back(report, previous, why)
    if state == "kept":  # confirmed after all (by a later deploy)
        return report
    found = await _ask_again(target, safety, report.id or "", max(0.0, deadline - loop.time()) + SETTLE)
    if found is not None and found.reverted is not None:
        return _switched_back(report, previous, why)
    if found is not None and found.current and found.pending is None:
        return report
    return _unverified(report, previous, why, seconds)


async def _ask_again(
    target: Target, safety: Safety, gen_id: str, budget: float, settled: bool = True
) -> remote.Found | None:
    """FIND over new connections, retried for `budget` s, until no activation runs on the host
    (and, if `settled`, no confirmation is pending either)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + budget
    found: remote.Found | None = None
    while True:
        try:
            async with await _fresh(target, safety, max(0.5, end - loop.time())) as again:
                found = await remote.find(again, gen_id, timeout=safety.timeout)
            if not found.running and (found.pending is None or not settled):
                return found
        except ClanError:
            pass
        if loop.time() >= end:
            return found
        await asyncio.sleep(1.0)


async def lost_answer(target: Target, safety: Safety, gen_id: str, error: ClanError,
                      progress: Progress = no_progress) -> HostReport:
    """`apply` gave no answer (broken connection, deadline): find out what the host did."""
    report = HostReport(target.machine, str(target), changed=False, id=gen_id)
    base = _message(error)
    progress(target.machine, "the activation's answer was lost: asking the host over a new connection")
    budget = safety.confirm_timeout + SETTLE if safety.confirm_timeout else safety.connect_timeout
    found = await _ask_again(target, safety, gen_id, budget, settled=False)
    if found is not None and found.pending is not None and not found.running and found.generation is not None:
        n, previous = found.pending
        if n == found.generation:  # it only waits for the confirmation: we can reach it, so give it
            try:
                async with await _fresh(target, safety, safety.connect_timeout) as again:
                    answer = await remote.confirm(again, n, previous, timeout=safety.timeout)
                if answer == "confirmed":
                    return HostReport(target.machine, str(target), changed=True, generation=n, id=gen_id)
                if answer.startswith("reverted"):
                    return _switched_back(report, previous, base)
            except ClanError:
                pass
    if found is None or found.running or found.pending is not None:
        report.error = f"{base}; the activation may still be running on the host"
        if safety.confirm_timeout:
            report.error += " (unless it is confirmed, the host switches back to its previous generation by itself)"
        report.extra["activation_may_be_running"] = True
        return report
    if found.generation is None:
        report.error = f"{base}; the new generation never reached the host, which is unchanged"
        return report
    report.generation = found.generation
    if found.reverted is not None:
        return _switched_back(report, found.reverted, base)
    if found.failed is not None and not found.current:
        report.error = f"{base}; the activation failed in step '{found.failed}' and the host switched back"
        report.step = found.failed
        return report
    if found.failed is not None:
        report.error = f"{base}; the activation failed in step '{found.failed}'"
        report.step = found.failed
        return report
    report.changed = True
    return report  # it finished and stands (nothing to confirm)


async def activate(
    conn: Connection, target: Target, gen_id: str | None, safety: Safety, progress: Progress = no_progress,
    data: bytes | None = None, existing: int | None = None, repair: bool = False,
) -> HostReport:
    """Apply (upload `data`, or re-activate generation `existing`) and see it through; `repair`: skip no step."""
    try:
        act = await remote.apply(conn, data, existing, replace(safety.apply_options(), repair=repair))
    except ClanError as exc:
        return await lost_answer(target, safety, gen_id or "", exc, progress)
    report = activation_report(target, gen_id, act, safety.rollback)
    if act.ok and act.armed is not None:
        report = await confirm_activation(conn, target, safety, act, report, progress)
    return report
