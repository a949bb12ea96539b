"""The vars library as other parts of pyclan call it (deploy, the JSON API, tests).

Every function takes an opened `Clan`. Secrets are decrypted with the admin's key
(`$PYCLAN_AGE_KEY_FILE` or `~/.config/pyclan/age.key`), except in `decrypt_with_machine_key`,
which proves what a machine itself can read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pyclan import safepath
from pyclan.config.machine_config import SecretFileSpec
from pyclan.lock import clan_lock
from pyclan.vars import age, keys
from pyclan.vars.access import VarEntry, get_var, list_vars, set_var
from pyclan.vars.clan_import import ImportReport, import_from_clan
from pyclan.vars.context import VarsContext
from pyclan.vars.generate import GenerateReport, generate, generate_missing
from pyclan.vars.layout import GenKey, vars_error
from pyclan.vars.status import CheckReport, check
from pyclan.vars.view import secret_host_path

if TYPE_CHECKING:
    from pyclan.clan import Clan

__all__ = [
    "CheckReport",
    "GenerateReport",
    "ImportReport",
    "VarEntry",
    "check",
    "decrypt_secret",
    "decrypt_with_machine_key",
    "generate",
    "generate_missing",
    "get",
    "import_from_clan",
    "keygen",
    "list_machine_vars",
    "machine_private_key",
    "machine_secrets",
    "set_value",
]

keygen = keys.keygen


def _key(ctx: VarsContext, machine: str, generator: str) -> GenKey:
    ctx.machines([machine])
    for key in ctx.graph.by_machine[machine]:
        if key.name == generator:
            return key
    names = sorted(k.name for k in ctx.graph.by_machine[machine])
    raise vars_error(f"{machine}/{generator}", f"machine '{machine}' declares no vars generator '{generator}'",
                     hint=f"it declares: {', '.join(names)}" if names else None)


def decrypt_secret(clan: Clan, machine: str, generator: str, file: str) -> bytes:
    """A secret var's value of `machine` in clear (admin key)."""
    ctx = VarsContext.of(clan)
    key = _key(ctx, machine, generator)
    files = ctx.node(key).generator.files
    if file not in files:
        raise vars_error(f"{key.label}/{file}", f"generator '{generator}' declares no file '{file}'",
                         hint=f"it declares: {', '.join(sorted(files))}")
    if not files[file].secret:
        raise vars_error(f"{key.label}/{file}", f"var {generator}/{file} is public, not a secret",
                         hint="read it with `pyclan vars get`")
    return ctx.read(key, file)


def machine_secrets(clan: Clan, machine: str) -> list[tuple[SecretFileSpec, bytes]]:
    """Every secret file the machine receives on deploy (secret and deploy=True), with its value.

    The spec carries this machine's owner/group/mode (they may differ between machines
    sharing a generator) and the host path `/var/lib/pyclan/secrets/<gen>/<file>`.
    """
    ctx = VarsContext.of(clan)
    ctx.machines([machine])
    out: list[tuple[SecretFileSpec, bytes]] = []
    for key in ctx.graph.by_machine[machine]:
        gen = ctx.node(key).declared_by[machine].generator
        for f, vf in sorted(gen.files.items()):
            if not (vf.secret and vf.deploy):
                continue
            path = secret_host_path(key.name, f)
            spec = SecretFileSpec(
                path=path, generator=key.name, file=f, shared=key.shared,
                owner=vf.owner, group=vf.group, mode=vf.mode, needed_for=vf.neededFor,
            )
            out.append((spec, ctx.read(key, f)))
    return out


def machine_private_key(clan: Clan, machine: str) -> str:
    """The machine's age private key (`AGE-SECRET-KEY-…`), decrypted with the admin key."""
    return age.secret_key(keys.machine_identity(clan.dir, machine, keys.load_admin_identities()))


def decrypt_with_machine_key(clan: Clan, machine: str, path: Path | str) -> bytes:
    """Decrypt an age file (absolute, or relative to the clan) with the machine's own key."""
    file = Path(path)
    if not file.is_absolute():
        file = clan.dir / file
    ident = keys.machine_identity(clan.dir, machine, keys.load_admin_identities())
    data = safepath.read_bytes(clan.dir, file) if file.is_relative_to(clan.dir) else file.read_bytes()
    return age.decrypt(data or b"", [ident], file, f"machines.{machine}",
                       hint=f"machine '{machine}' is not a recipient of this secret")


def list_machine_vars(clan: Clan, machine: str) -> list[VarEntry]:
    return list_vars(VarsContext.of(clan), machine)


def get(clan: Clan, machine: str, var_id: str) -> tuple[VarEntry, bytes]:
    return get_var(VarsContext.of(clan), machine, var_id)


def set_value(clan: Clan, machine: str, var_id: str, value: bytes, sandbox: bool = True) -> VarEntry:
    with clan_lock(clan.dir, "pyclan vars set"):
        return set_var(VarsContext.of(clan), machine, var_id, value, sandbox=sandbox)

