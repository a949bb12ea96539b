"""Single vars by id (`<generator>/<file>`): list, get, set (R12.8).

`get` accepts an exact id or a unique prefix of one (pyclan accepts the prefix where Clan only
answers "Did you mean"); `set` changes a stored value and so insists on the exact id, answering a
unique prefix with "Did you mean: <id>".

`set` keeps a generator's files consistent: setting a persisted prompt's file re-runs the generator
with the new answer (and its dependents, like `vars generate -g`), so a password's hash follows the
password. Setting any other file stores just that file and records it in `.set-by-hand`; the
generator's other files are then reported `outdated` by `vars check` until they are set too or the
generator runs again (which replaces the folder, list included).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pyclan.errors import did_you_mean
from pyclan.vars.context import VarsContext
from pyclan.vars.foreign import IMPORT_COMMAND, folder_reasons, refuse_if_foreign, set_by_hand
from pyclan.vars.layout import SET_BY_HAND, GenKey, generate_hint, vars_error
from pyclan.vars.store import Entry, atomic_write

SECRET_MASK = "********"
NOT_SET = "<not set>"


@dataclass(frozen=True)
class VarEntry:
    id: str  # "<generator>/<file>"
    key: GenKey
    file: str
    secret: bool
    is_set: bool
    value: bytes | None  # public values only
    regenerated: tuple[str, ...] = ()  # `set` of a prompt's answer: the generators that ran again

    def shown(self) -> str:
        """What `vars list` prints for the value."""
        if not self.is_set:
            return NOT_SET
        if self.secret:
            return SECRET_MASK
        text = (self.value or b"").decode(errors="replace")
        return text[:-1] if text.endswith("\n") else text

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "generator": self.key.name, "file": self.file, "shared": self.key.shared,
            "secret": self.secret, "set": self.is_set,
            "value": None if self.secret or self.value is None else self.value.decode(errors="replace"),
        }


def list_vars(ctx: VarsContext, machine: str) -> list[VarEntry]:
    ctx.machines([machine])
    out: list[VarEntry] = []
    for key in ctx.graph.by_machine[machine]:
        for f, vf in ctx.node(key).generator.files.items():
            value = None if vf.secret else ctx.store.public(key, f)
            is_set = ctx.store.has(key, f, vf.secret)
            out.append(VarEntry(f"{key.name}/{f}", key, f, vf.secret, is_set, value))
    return sorted(out, key=lambda e: e.id)


def find_var(ctx: VarsContext, machine: str, var_id: str, exact: bool = False) -> VarEntry:
    entries = list_vars(ctx, machine)
    for e in entries:
        if e.id == var_id:
            return e
    matches = [e for e in entries if e.id.startswith(var_id)]
    if not matches:
        raise vars_error(
            f"{machine}/{var_id}", f"Couldn't find var: {var_id} for machine: {machine}",
            hint=did_you_mean(var_id, [e.id for e in entries]) or "list them with `pyclan vars list " + machine + "`",
        )
    if len(matches) > 1:
        raise vars_error(
            f"{machine}/{var_id}",
            f"Found multiple vars in {machine} for {var_id}: {', '.join(e.id for e in matches)}",
            hint="give more of the id",
        )
    if exact:
        raise vars_error(f"{machine}/{var_id}", f"Did you mean: {matches[0].id}",
                         hint="`vars set` needs the exact id")
    return matches[0]


def get_var(ctx: VarsContext, machine: str, var_id: str) -> tuple[VarEntry, bytes]:
    entry = find_var(ctx, machine, var_id)
    folder = ctx.store.dir(entry.key)
    if not entry.is_set and folder.is_dir() and folder_reasons(folder):
        raise vars_error(f"{machine}/{entry.id}", f"Var {entry.id} is stored in a form pyclan did not write "
                         f"(e.g. by Clan's sops backend)", hint=f"run `{IMPORT_COMMAND}` to take it over")
    if not entry.is_set:
        raise vars_error(f"{machine}/{entry.id}", f"Var {entry.id} has not been generated yet",
                         hint=generate_hint(machine))
    return entry, ctx.read(entry.key, entry.file)


def set_var(ctx: VarsContext, machine: str, var_id: str, value: bytes, sandbox: bool = True) -> VarEntry:
    """Store `value`, encrypted (secrets) for every admin and every deploying machine."""
    entry = find_var(ctx, machine, var_id, exact=True)
    refuse_if_foreign(ctx.clan_dir, "pyclan vars set")
    key, gen = entry.key, ctx.node(entry.key).generator
    done = VarEntry(entry.id, key, entry.file, entry.secret, True, None if entry.secret else value)
    prompt = gen.prompts.get(entry.file)
    if prompt is not None and prompt.persist:
        from pyclan.vars.generate import generate_in

        try:
            answer = value.decode()
        except UnicodeDecodeError:
            raise vars_error(f"{machine}/{entry.id}", "a prompt's answer must be UTF-8 text") from None
        report = generate_in(ctx, [machine], [key.name], prompt_values={key.label: {entry.file: answer}},
                             sandbox=sandbox)
        return replace(done, regenerated=tuple(report.generated))
    data: Entry = ctx.encrypt_for(key, entry.file, value) if entry.secret else value
    folder = ctx.store.dir(key)
    others = [f for f, vf in gen.files.items() if f != entry.file and ctx.store.has(key, f, vf.secret)]
    if others:  # listed before the value changes: a kill in between only over-reports
        by_hand = sorted({*set_by_hand(folder), entry.file})
        atomic_write(folder / SET_BY_HAND, "".join(f"{f}\n" for f in by_hand).encode())
    ctx.store.write(key, {entry.file: data}, ctx.hash_of(key), replace_all=False)
    return done
