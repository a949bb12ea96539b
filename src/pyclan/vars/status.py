"""`vars check`: is every var of these machines present, current and readable by the right keys (R12.4)?

Reported per generator file: `missing` (never generated, or lost), `outdated` (the
definition changed since it was generated), `recipients` (encrypted to a different set of keys
than wanted: an admin or machine was added or removed — `vars generate` re-encrypts) and
`undecryptable` (the admin key cannot open it although the recipient list says it should), and
`vars-foreign` (a generator folder pyclan did not write, e.g. Clan's sops layout: see `foreign.py`;
its other issues are not reported, `pyclan vars import --from-clan` takes it over). A file is also
`outdated` when another file of its generator was set by hand (`vars set`) after it was made.
Decryption is only verified when the admin key is available; otherwise a note says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pyclan.errors import ClanError
from pyclan.vars import age, keys
from pyclan.vars.context import VarsContext
from pyclan.vars.foreign import IMPORT_COMMAND, scan, set_by_hand
from pyclan.vars.layout import generate_hint

if TYPE_CHECKING:
    from pyclan.clan import Clan

IssueKind = Literal["missing", "outdated", "recipients", "undecryptable", "vars-foreign"]


@dataclass(frozen=True)
class Issue:
    kind: IssueKind
    var: str  # "<machine>/<gen>[/<file>]" or "shared/<gen>[/<file>]", or "machine-key/<m>"
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "var": self.var, "message": self.message, "fix": self.fix}


@dataclass
class CheckReport:
    machines: list[str]
    checked: int = 0  # generators looked at
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "machines": self.machines, "checked": self.checked,
            "issues": [i.to_json() for i in self.issues], "notes": self.notes,
        }


def check(clan: Clan, machines: Iterable[str] | None = None) -> CheckReport:
    return check_in(VarsContext.of(clan), machines)


def check_in(ctx: VarsContext, machines: Iterable[str] | None = None) -> CheckReport:
    chosen = ctx.machines(machines)
    report = CheckReport(machines=chosen)
    problem = ctx.identity_problem()
    can_decrypt = problem is None
    if problem is not None:
        report.notes.append(f"decryption not verified: {problem}")
    regen = f"run `pyclan vars generate {' '.join(chosen)}`"
    foreign = {f.key: f for f in scan(ctx.clan_dir, chosen if machines else None)}
    for folder in foreign.values():
        report.issues.append(Issue(
            "vars-foreign", folder.key.label, folder.describe(),
            f"run `{IMPORT_COMMAND}` to take it over (`--dry-run` first shows what it would do)",
        ))
    for key in ctx.graph.keys_of(chosen):
        report.checked += 1
        if key in foreign:
            continue
        gen = ctx.node(key).generator
        status = ctx.status(key)
        hint = generate_hint(key.machine) if key.machine else regen
        by_hand = set_by_hand(ctx.store.dir(key))
        for f in sorted(gen.files) if by_hand else []:
            if f not in by_hand and f not in status.missing:
                where = f" {key.machine}" if key.machine else ""
                report.issues.append(Issue(
                    "outdated", f"{key.label}/{f}",
                    f"var {key.name}/{f} may no longer match {', '.join(by_hand)}, set by hand with `vars set`",
                    f"run `pyclan vars generate -g {key.name}{where}` to make all of its files anew, "
                    f"or set this one too with `pyclan vars set`",
                ))
        for f in status.missing:
            report.issues.append(
                Issue("missing", f"{key.label}/{f}", f"var {key.name}/{f} has not been generated", hint)
            )
        if status.outdated and len(status.missing) < len(gen.files):
            report.issues.append(Issue(
                "outdated", key.label,
                f"generator '{key.name}' changed since its vars were generated (validation hash differs)", hint,
            ))
        for f, vf in sorted(gen.files.items()):
            if not vf.secret:
                continue
            stored = ctx.store.secret(key, f)
            if stored is None:
                continue
            wanted = ctx.wanted_recipients(key, f, create=False)
            if stored.recipients != wanted:
                report.issues.append(Issue(
                    "recipients", f"{key.label}/{f}", _diff(ctx, stored.recipients, wanted),
                    f"{regen} to re-encrypt",
                ))
            elif can_decrypt and age.try_decrypt(stored.ciphertext, ctx.identities()) is None:
                report.issues.append(Issue(
                    "undecryptable", f"{key.label}/{f}", "your admin key cannot decrypt this secret",
                    keys.NOT_RECIPIENT_HINT,
                ))
    for m in chosen:
        if can_decrypt and keys.machine_public_key(ctx.clan_dir, m) is not None:
            try:  # a replaced keys/machines/<m>.pub or a lost private key (issue 10 item 4)
                keys.verify_machine_key(ctx.clan_dir, m, ctx.identities())
            except ClanError as err:
                p = err.problems[0]
                report.issues.append(Issue("recipients", f"machine-key/{m}", p.message, p.hint or ""))
        stored_for = keys.machine_key_recipients(ctx.clan_dir, m)
        if stored_for is not None and stored_for != tuple(ctx.admins):
            what = "the machine's private key: " + _diff(ctx, stored_for, tuple(ctx.admins))
            report.issues.append(Issue("recipients", f"machine-key/{m}", what, f"{regen} to re-encrypt"))
    return report


def _diff(ctx: VarsContext, stored: tuple[str, ...], wanted: tuple[str, ...]) -> str:
    extra = sorted(set(stored) - set(wanted))
    lacking = sorted(set(wanted) - set(stored))
    parts = []
    if lacking:
        parts.append("not yet encrypted to " + ", ".join(ctx.describe_key(k) for k in lacking))
    if extra:
        parts.append("still encrypted to " + ", ".join(ctx.describe_key(k) for k in extra))
    return "recipients out of date: " + "; ".join(parts)
