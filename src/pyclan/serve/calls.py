"""How the server calls the registry: its own clan injected, writes one at a time, secrets masked.

The HTTP face differs from `pyclan api call` in three ways only:
- the clan is the server's: a `flake` other than it is refused (one clan per server);
- a function that changes the clan takes the clan's lock without waiting, and if another
  writer holds it the call is refused (409) instead of hanging the request;
- no result carries a secret's value (`"<secret>"` instead) except `get_var`, which is how a
  value is asked for explicitly (and which needs the admin key for secrets).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyclan import api
from pyclan.errors import ClanError, Problem

SECRET = "<secret>"
REVEALS_SECRETS = frozenset({"get_var"})

# Long-running: the UI starts these as tasks (any function can be one).
TASK_FUNCTIONS = frozenset(
    {"update_machines", "install_machine", "run_generators", "create_backup", "restore_backup", "check_clan",
     "check_vars", "machines_status", "update_inputs", "hosts_up", "network_overview", "ping_machines"}
)  # fmt: skip

# Functions that only read the clan (everything else is a write and takes the clan's lock).
READ_PREFIXES = ("list_", "get_", "show_", "check_", "resolve_", "describe")
READ_FUNCTIONS = frozenset(
    {"inventory_schema", "machines_status", "network_overview", "ping_machines", "hosts_status", "build_machine",
     "selected_machines"}
)  # fmt: skip

STATUS_OF_KIND = {"usage-error": 400, "parse-error": 400, "conflict": 409, "inventory-changed": 409}


def is_write(name: str) -> bool:
    return not (name.startswith(READ_PREFIXES) or name in READ_FUNCTIONS)


def parameters(name: str) -> set[str]:
    fn = api.load_all().get(name)
    return set(inspect.signature(fn).parameters) if fn is not None else set()


class Caller:
    """Calls registry functions for one clan, as `api.call` does, with the rules above."""

    def __init__(self, clan_dir: Path) -> None:
        self.clan_dir = clan_dir

    def prepare(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments with the server's clan; raises ClanError for another clan."""
        wanted = args.get("flake")
        if wanted is not None and Path(str(wanted)).resolve() != self.clan_dir:
            raise ClanError.single(
                "usage-error", "flake", f"this server serves {self.clan_dir}, not {wanted}",
                hint="start another `pyclan serve -C DIR` for another clan",
            )  # fmt: skip
        if "flake" in parameters(name):
            return {**args, "flake": str(self.clan_dir)}
        return dict(args)

    def call(
        self, name: str, args: dict[str, Any], callbacks: dict[str, Callable[..., Any]] | None = None
    ) -> dict[str, Any]:
        """`api.call`'s envelope, secrets masked; never raises for user errors."""
        try:
            prepared = self.prepare(name, args)
        except ClanError as err:
            return api.error_envelope(err.problems)
        if not is_write(name) or name not in api.load_all():
            return mask(name, api.call(name, prepared, callbacks))
        from pyclan.lock import clan_lock

        try:  # never waits: a second writer (another request, task or command) gets 409 at once
            lock = clan_lock(self.clan_dir, f"pyclan serve: {name}", wait=False)
            lock.__enter__()
        except ClanError as err:
            return api.error_envelope([_busy(err.problems[0].message)])
        try:
            return mask(name, api.call(name, prepared, callbacks))
        finally:
            lock.__exit__(None, None, None)


def _busy(why: str) -> Problem:
    return Problem("conflict", "clan", f"the clan is being changed ({why})",
                   hint="try again when the other command or task has finished")  # fmt: skip


def http_status(envelope: dict[str, Any]) -> int:
    """200 for success; for errors the status of the first problem's kind (422 by default)."""
    if envelope.get("status") == "success":
        return 200
    errors = envelope.get("errors") or [{}]
    first = errors[0]
    if first.get("kind") == "usage-error" and str(first.get("message", "")).startswith("no API function named"):
        return 404
    return STATUS_OF_KIND.get(str(first.get("kind")), 422)


def mask(name: str, envelope: dict[str, Any]) -> dict[str, Any]:
    """Replace every secret's value in a result with "<secret>" (not for `get_var`)."""
    if name in REVEALS_SECRETS or envelope.get("status") != "success":
        return envelope
    return {**envelope, "data": _masked(envelope.get("data"))}


# Arguments that may carry a secret (a var's value, prompt answers): never shown back in task lists.
SECRET_ARGUMENTS = {"set_var": ("value", "value_base64"), "run_generators": ("prompt_values",),
                    "update_machines": ("prompt_values",)}  # fmt: skip


def mask_arguments(name: str, args: dict[str, Any]) -> dict[str, Any]:
    hidden = SECRET_ARGUMENTS.get(name, ())
    return {k: (SECRET if k in hidden and v is not None else v) for k, v in args.items()}


def _masked(value: Any) -> Any:
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _masked(v) for k, v in value.items()}
    if out.get("secret") is True:
        for key in ("value", "base64"):
            if key in out and (out[key] is not None or (key == "value" and out.get("set"))):
                out[key] = SECRET
    return out
