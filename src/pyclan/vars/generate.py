"""`vars generate`: run the missing or outdated generators in dependency order (R12.5, R12.6).

Order of work, all under the clan's write lock: inventory checks (unless no_check) → select
generators → collect every prompt answer (so a missing answer fails before anything is
written) → show any change of recipients and stop unless confirmed (`--yes`) → run each
generator once (shared ones included) and store it atomically → re-encrypt secrets whose
recipients changed. A failing generator stops the run; everything stored before it stays.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyclan import safepath
from pyclan.errors import did_you_mean
from pyclan.lock import clan_lock
from pyclan.vars import keys
from pyclan.vars.context import VarsContext
from pyclan.vars.foreign import refuse_if_foreign
from pyclan.vars.layout import KEYS_DIR, VARS_DIR, GenKey, vars_error
from pyclan.vars.prompts import PromptAsker, PromptValues, load_prompt_values, validate_prompt_values
from pyclan.vars.recipients import confirm_changes, planned_changes, raise_problems, reencrypt
from pyclan.vars.run import execute, run_folder
from pyclan.vars.store import Entry

if TYPE_CHECKING:
    from pyclan.clan import Clan


@dataclass
class GenerateReport:
    generated: list[str] = field(default_factory=list)  # "<machine>/<gen>" or "shared/<gen>", in run order
    reencrypted: list[str] = field(default_factory=list)  # "<label>/<file>"
    machine_keys_created: list[str] = field(default_factory=list)
    machine_keys_reencrypted: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "generated": self.generated,
            "reencrypted": self.reencrypted,
            "machineKeysCreated": self.machine_keys_created,
            "machineKeysReencrypted": self.machine_keys_reencrypted,
        }


def generate(
    clan: Clan,
    machines: Iterable[str] | None = None,
    generators: Iterable[str] | None = None,
    regenerate: bool = False,
    prompt_values: Path | PromptValues | None = None,
    sandbox: bool = True,
    no_check: bool = False,
    yes: bool = False,
) -> GenerateReport:
    """Generate the vars of `machines` (default: all); see the module docstring for the steps.

    yes: accept a change of recipients (an admin or machine key added, removed or replaced)."""
    if not no_check:
        from pyclan.services.constraints import enforce

        enforce(clan.resolved.checks, "`pyclan vars generate`")
    with clan_lock(clan.dir, "pyclan vars generate"):
        return generate_in(VarsContext.of(clan), machines, generators, regenerate, prompt_values, sandbox, yes)


def generate_in(
    ctx: VarsContext,
    machines: Iterable[str] | None = None,
    generators: Iterable[str] | None = None,
    regenerate: bool = False,
    prompt_values: Path | PromptValues | None = None,
    sandbox: bool = True,
    yes: bool = False,
) -> GenerateReport:
    graph = ctx.graph
    chosen = ctx.machines(machines)
    refuse_if_foreign(ctx.clan_dir, "pyclan vars generate")  # never replace vars another tool wrote
    values: PromptValues = {}
    if isinstance(prompt_values, Path):
        values = load_prompt_values(prompt_values)
        validate_prompt_values(values, graph, str(prompt_values))
    elif prompt_values is not None:
        values = prompt_values
        validate_prompt_values(values, graph, "prompt values")
    order = select(ctx, chosen, list(generators or []), regenerate)
    if order:
        _check_writable(ctx.clan_dir)
        ctx.admins  # noqa: B018 - fail early (no admin keys) before any generator runs
    answers = _collect_answers(ctx, order, PromptAsker(values), regenerate)
    _verify_machine_keys(ctx, chosen)
    confirm_changes(ctx, planned_changes(ctx, [*graph.keys_of(chosen), *order], chosen), yes)

    report = GenerateReport()
    produced: dict[GenKey, dict[str, bytes]] = {}
    with run_folder():  # every secret in clear on disk lives below it, and dies with it
        for key in order:
            node = ctx.node(key)
            deps = {d.name: produced[d] if d in produced else ctx.read_all(d) for d in node.deps}
            outputs = execute(key, node.generator, deps, answers.get(key, {}), sandbox=sandbox)
            entries: dict[str, Entry] = {}
            for f, vf in node.generator.files.items():
                entries[f] = ctx.encrypt_for(key, f, outputs[f]) if vf.secret else outputs[f]
            ctx.store.write(key, entries, ctx.hash_of(key), replace_all=True)
            produced[key] = outputs
            report.generated.append(key.label)

    again = reencrypt(ctx, [k for k in graph.keys_of(chosen) if k not in produced], chosen)
    report.reencrypted = again.files
    report.machine_keys_reencrypted = again.machine_keys
    report.machine_keys_created = list(ctx.created_machine_keys)
    raise_problems(again)
    return report


def _verify_machine_keys(ctx: VarsContext, machines: list[str]) -> None:
    """A replaced keys/machines/<m>.pub is an error, never a change of recipients to accept."""
    if not ctx.has_identities():
        return  # nothing can be re-encrypted either; encrypting to a machine verifies its key first
    for m in machines:
        if keys.machine_public_key(ctx.clan_dir, m) is not None:
            ctx.machine_key(m, create=True)


def _check_writable(clan_dir: Path) -> None:
    """A read-only vars/ or keys/ is found before anything runs, not half-way through."""
    for name in (VARS_DIR, KEYS_DIR):
        folder = clan_dir / name
        probe = folder if folder.is_dir() else clan_dir
        if not os.access(probe, os.W_OK):
            exc = OSError(errno.EROFS if _read_only_fs(probe) else errno.EACCES, "not writable")
            raise safepath.os_error(clan_dir, folder, exc, f"write below {name}/")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def select(ctx: VarsContext, machines: list[str], generators: list[str], regenerate: bool) -> list[GenKey]:
    """What to run, dependencies first (R12.5)."""
    graph = ctx.graph
    scope = graph.keys_of(machines)
    if generators:
        names = set(generators)
        start = [k for k in scope if k.name in names]
        unknown = sorted(names - {k.name for k in start})
        if unknown:
            raise vars_error(
                "--generator",
                f"Generator(s) {', '.join(repr(n) for n in unknown)} not found in machines {machines}",
                hint=did_you_mean(unknown[0], {k.name for k in scope}),
            )
    elif regenerate:
        start = scope
    else:  # missing, outdated, or a secret that no longer decrypts (repaired, not called up to date)
        start = [k for k in scope if not ctx.complete(k) or ctx.damaged(k)]
    chosen = graph.closure_dependents(start)
    chosen |= graph.missing_dependencies(chosen, ctx.complete)
    return graph.order(chosen)


def _collect_answers(
    ctx: VarsContext, order: list[GenKey], asker: PromptAsker, regenerate: bool
) -> dict[GenKey, dict[str, str]]:
    answers: dict[GenKey, dict[str, str]] = {}
    for key in order:
        gen = ctx.node(key).generator
        for name, prompt in sorted(gen.prompts.items()):
            current: str | None = None
            if prompt.persist and ctx.store.has(key, name, gen.files[name].secret) and name not in ctx.damaged(key):
                current = ctx.read(key, name).decode()
                if not regenerate and asker.from_values(key, name) is None:
                    answers.setdefault(key, {})[name] = current  # reuse silently (R12.5)
                    continue
            answers.setdefault(key, {})[name] = asker.answer(key, name, prompt, current)
    return answers


def generate_missing(
    clan: Clan, machines: Iterable[str] | None = None, *, sandbox: bool = True,
    prompt_values: Path | Mapping[str, Mapping[str, str]] | None = None, yes: bool = False,
) -> GenerateReport:
    """What `machines update`/`install` call first: the missing generators, no constraint checks
    (the caller has already run them, or was told `--no-check`)."""
    return generate(clan, machines, sandbox=sandbox, prompt_values=prompt_values, no_check=True, yes=yes)
