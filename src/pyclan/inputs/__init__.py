"""Service modules from other sources: declared inputs, `--override-input` and `clan.lock`.

See docs/inputs.md for the user's view. Modules: `urls` (input URLs), `fetch` (the git cache),
`treehash` (content hashes), `lock` (clan.lock), `package` (entry-point inputs), `providers`
(inputs → service providers, checked against the lock), `update` (`pyclan inputs update`).
"""

from pyclan.inputs.lock import LOCK_FILE, LockEntry, LockFile
from pyclan.inputs.providers import CLAN_CORE, InputSet, ResolvedInput, providers_for
from pyclan.inputs.update import InputUpdate, UpdatePlan, plan_update

__all__ = [
    "CLAN_CORE",
    "LOCK_FILE",
    "InputSet",
    "InputUpdate",
    "LockEntry",
    "LockFile",
    "ResolvedInput",
    "UpdatePlan",
    "plan_update",
    "providers_for",
]
