"""Single vars by id (`<generator>/<file>`): list, get, set (R12.8).

`get` accepts an exact id or a unique prefix of one (pyclan accepts the prefix where Clan only
answers "Did you mean"); `set` changes a stored value and so insists on the exact id, answering a
unique prefix with "Did you mean: <id>".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyclan.errors import did_you_mean
from pyclan.vars.context import VarsContext
from pyclan.vars.layout import GenKey, generate_hint, vars_error
from pyclan.vars.store import Entry

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
    if not entry.is_set:
        raise vars_error(f"{machine}/{entry.id}", f"Var {entry.id} has not been generated yet",
                         hint=generate_hint(machine))
    return entry, ctx.read(entry.key, entry.file)


def set_var(ctx: VarsContext, machine: str, var_id: str, value: bytes) -> VarEntry:
    """Store `value`, encrypted (secrets) for every admin and every deploying machine."""
    entry = find_var(ctx, machine, var_id, exact=True)
    data: Entry = ctx.encrypt_for(entry.key, entry.file, value) if entry.secret else value
    ctx.store.write(entry.key, {entry.file: data}, ctx.hash_of(entry.key), replace_all=False)
    return VarEntry(entry.id, entry.key, entry.file, entry.secret, True, None if entry.secret else value)
