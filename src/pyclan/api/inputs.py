"""API of inputs: the clan's declared sources of service modules and their lock file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyclan.api import register
from pyclan.api.common import open_flake


@dataclass(frozen=True)
class InputInfo:
    """One input: kind, declared source, lock entry, override, services provided (or its error)."""

    name: str
    kind: str
    source: str
    services: list[str] = field(default_factory=list)
    locked: dict[str, str] | None = None
    overridden: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class FileChangeInfo:
    """A file changed between the old and the new lock (`git diff --stat`-like)."""

    path: str
    status: str
    added: int | None = None
    deleted: int | None = None


@dataclass(frozen=True)
class InputUpdateInfo:
    """One input's move: old and new lock entries (with short forms), commits and files changed."""

    name: str
    changed: bool
    kind: str
    new: dict[str, str]
    short: str
    source: str
    old: dict[str, str] | None = None
    oldShort: str | None = None
    oldSource: str | None = None
    commits: list[str] = field(default_factory=list)
    files: list[FileChangeInfo] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class InputsUpdate:
    """`inputs update`: per input what changed, inputs dropped from the lock, and if it was written."""

    lock: str
    changed: bool
    written: bool
    inputs: list[InputUpdateInfo] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@register
def list_inputs(
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
    notify: Callable[[str], None] | None = None,
) -> list[InputInfo]:
    """`inputs list`: declared inputs (and the bundled `clan-core`), locked revisions, services."""
    from pyclan.inputs import InputSet
    from pyclan.inputs.listing import describe_inputs

    clan = open_flake(flake, input_overrides)
    inputs = InputSet(clan.dir, clan.loaded.inventory.inputs, clan.input_overrides)
    if notify is not None:
        inputs.notify = notify
    return [
        InputInfo(
            name=name,
            kind=row["kind"],
            source=row["source"],
            services=list(row["services"]),
            locked=row["locked"],
            overridden=row["overridden"],
            error=row["error"],
        )
        for name, row in describe_inputs(inputs).items()
    ]


@register
def update_inputs(
    names: list[str] | None = None,
    dry_run: bool = False,
    flake: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> InputsUpdate:
    """`inputs update`: follow each input's ref again, report what changed, then write clan.lock
    (not with `dry_run`). Overrides never take part."""
    from contextlib import ExitStack

    from pyclan.inputs import InputSet, plan_update
    from pyclan.lock import clan_lock

    clan = open_flake(flake)
    inputs = InputSet(clan.dir, clan.loaded.inventory.inputs, {})
    if notify is not None:
        inputs.notify = notify
    with ExitStack() as held:
        if not dry_run:  # one writer per clan (pyclan.lock): plan and write under the lock
            held.enter_context(clan_lock(clan.dir, "pyclan inputs update"))
        plan = plan_update(inputs, names or [])
        written = plan.changed and not dry_run
        if written:
            plan.apply()
    return InputsUpdate(
        lock=str(plan.lock.path),
        changed=plan.changed,
        written=written,
        inputs=[
            InputUpdateInfo(
                name=u.name,
                changed=u.changed,
                kind=u.new.kind,
                new=u.new.to_json(),
                short=u.new.short,
                source=u.new.source,
                old=u.old.to_json() if u.old else None,
                oldShort=u.old.short if u.old else None,
                oldSource=u.old.source if u.old else None,
                commits=list(u.commits),
                files=[FileChangeInfo(c.path, c.status, c.added, c.deleted) for c in u.changes],
                note=u.note,
            )
            for u in plan.updates
        ],
        removed=list(plan.removed),
    )

