"""API of vars: the admin key, generating, listing, reading, setting and checking vars."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.vars.clan_import import ImportReport


@dataclass(frozen=True)
class KeygenResult:
    """The admin age key used (created or reused) and where its public half is registered."""

    user: str
    publicKey: str
    keyFile: str
    createdKey: bool
    registered: str


@dataclass(frozen=True)
class GenerateResult:
    """What `vars generate` did: generators run, secrets re-encrypted, machine keys made."""

    generated: list[str] = field(default_factory=list)
    reencrypted: list[str] = field(default_factory=list)
    machineKeysCreated: list[str] = field(default_factory=list)
    machineKeysReencrypted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VarIssue:
    """A var that is missing, outdated, undecryptable or encrypted to the wrong keys."""

    kind: str
    var: str
    message: str
    fix: str


@dataclass(frozen=True)
class VarsCheckReport:
    """`vars check`: ok unless an issue was found; notes say what could not be checked."""

    ok: bool
    machines: list[str]
    checked: int
    issues: list[VarIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VarInfo:
    """One var of a machine; `value` only for public vars that are set."""

    id: str
    generator: str
    file: str
    shared: bool
    secret: bool
    set: bool
    value: str | None = None


@dataclass(frozen=True)
class VarValue:
    """A var's value: `value` if it is text, else `base64`."""

    id: str
    secret: bool
    value: str | None = None
    base64: str | None = None


@dataclass(frozen=True)
class VarSet:
    """The var that `set_var` stored (encrypted if secret)."""

    id: str
    secret: bool
    set: bool = True
    regenerated: list[str] = field(default_factory=list)  # a prompt's answer: generators that ran again


@register
def keygen(user: str | None = None, force: bool = False, flake: str | None = None) -> KeygenResult:
    """Create (or reuse) your admin age key and register it as keys/admins/<user>.pub."""
    from pyclan.inventory.load import find_clan_dir
    from pyclan.vars.keys import keygen as make_key

    r = make_key(find_clan_dir(Path(flake) if flake else None), user, force)
    return KeygenResult(r.user, r.public_key, r.key_file, r.created_key, r.registered)


@register
def run_generators(
    machines: list[str] | None = None,
    generators: list[str] | None = None,
    regenerate: bool = False,
    prompt_values: dict[str, dict[str, str]] | str | None = None,
    sandbox: bool = True,
    no_check: bool = False,
    yes: bool = False,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> GenerateResult:
    """`vars generate`: run missing/outdated generators (prompts answered by `prompt_values`:
    the answers, or the path of a JSON file holding them)."""
    from pyclan.vars.api import generate

    clan = open_flake(flake, input_overrides)
    clan.require_machines(machines or [])
    answers = Path(prompt_values) if isinstance(prompt_values, str) else prompt_values
    r = generate(
        clan, machines or None, generators or None, regenerate, answers, sandbox=sandbox, no_check=no_check, yes=yes
    )
    return GenerateResult(r.generated, r.reencrypted, r.machine_keys_created, r.machine_keys_reencrypted)


@register
def check_vars(
    machines: list[str] | None = None, flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> VarsCheckReport:
    """`vars check`: what is missing, outdated, undecryptable or mis-encrypted."""
    from pyclan.vars.api import check

    clan = open_flake(flake, input_overrides)
    clan.require_machines(machines or [])
    r = check(clan, machines or None)
    return VarsCheckReport(
        ok=r.ok,
        machines=list(r.machines),
        checked=r.checked,
        issues=[VarIssue(i.kind, i.var, i.message, i.fix) for i in r.issues],
        notes=list(r.notes),
    )


@register
def list_vars(machine: str, flake: str | None = None, input_overrides: dict[str, str] | None = None) -> list[VarInfo]:
    """`vars list`: a machine's vars, public values shown, secrets never."""
    from pyclan.vars.api import list_machine_vars

    clan = open_flake(flake, input_overrides)
    clan.require_machines([machine])
    out = []
    for e in list_machine_vars(clan, machine):
        value = None if e.secret or e.value is None else e.value.decode(errors="replace")
        out.append(VarInfo(e.id, e.key.name, e.file, e.key.shared, e.secret, e.is_set, value))
    return out


@register
def get_var(
    machine: str, var_id: str, flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> VarValue:
    """A var's value (a unique prefix of `<generator>/<file>` is enough; secrets need the admin key)."""
    from pyclan.vars.api import get

    clan = open_flake(flake, input_overrides)
    clan.require_machines([machine])
    entry, raw = get(clan, machine, var_id)
    try:
        return VarValue(entry.id, entry.secret, value=raw.decode())
    except UnicodeDecodeError:
        return VarValue(entry.id, entry.secret, base64=base64.b64encode(raw).decode())


@register
def set_var(
    machine: str,
    var_id: str,
    value: str | None = None,
    value_base64: str | None = None,
    sandbox: bool = True,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> VarSet:
    """Store a var's value (`value` as text or `value_base64`), encrypted for admins and machines
    if it is a secret; a prompt's new answer re-runs its generator (in the sandbox unless `sandbox`
    is false) so that dependent files change with it."""
    from pyclan.errors import ClanError
    from pyclan.vars.api import set_value

    if (value is None) == (value_base64 is None):
        raise ClanError.single("usage-error", "value", "give exactly one of value and value_base64")
    raw = value.encode() if value is not None else base64.b64decode(value_base64 or "")
    clan = open_flake(flake, input_overrides)
    clan.require_machines([machine])
    entry = set_value(clan, machine, var_id, raw, sandbox=sandbox)
    return VarSet(entry.id, entry.secret, regenerated=list(entry.regenerated))


@register
def import_clan_vars(
    dry_run: bool = False, flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> ImportReport:
    """`pyclan vars import --from-clan`: take over the vars Clan's sops backend wrote (all or nothing)."""
    from pyclan.lock import clan_lock
    from pyclan.vars.clan_import import import_from_clan

    clan = open_flake(flake, input_overrides)
    if dry_run:
        return import_from_clan(clan, dry_run=True)
    with clan_lock(clan.dir, "pyclan vars import"):
        return import_from_clan(clan)
