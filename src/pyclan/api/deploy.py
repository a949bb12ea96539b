"""API of deploy: build a machine's generation; update, install and roll back hosts over SSH."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.deploy.changes import Changes
from pyclan.errors import ClanError

if TYPE_CHECKING:
    from pyclan.deploy.runner import HostReport

Progress = Callable[[str, str], None]
HostKeyMode = Literal["strict", "ask", "tofu", "none"]
DEFAULT_JOBS = 32  # pyclan.deploy.update.DEFAULT_JOBS (not imported: asyncssh is slow to load)
CONNECT_TIMEOUT = 10.0  # pyclan.deploy.transport.CONNECT_TIMEOUT
STEP_TIMEOUT = 60.0  # pyclan.deploy.confirm.STEP_TIMEOUT
ACTIVATION_TIMEOUT = 900.0  # pyclan.deploy.confirm.ACTIVATION_TIMEOUT
CONFIRM_TIMEOUT = 30  # pyclan.deploy.confirm.CONFIRM_TIMEOUT


@dataclass
class HostResult:
    """The outcome for one machine: changed or not, its generation, or the error and its hint."""

    machine: str
    changed: bool
    seconds: float
    generation: int | None = None
    error: str | None = None
    id: str | None = None
    target: str | None = None
    hint: str | None = None
    step: str | None = None
    output: str | None = None
    rolled_back_to: int | None = None
    changes: Changes | None = None
    attempted: bool = True  # false: a batched rollout stopped before this host (`error` says why)
    activation_may_be_running: bool = False  # the answer was lost; the host may still be activating
    drift: list[str] = field(default_factory=list)  # `--dry-run`: what was changed by hand and would be put back
    repaired: list[str] = field(default_factory=list)  # what was changed by hand and was put back


@dataclass(frozen=True)
class BuiltGeneration:
    """A generation built into the local cache: its id, folder, and what it holds."""

    machine: str
    id: str
    path: str
    files: int
    packages: int
    users: int
    units: int
    hooks: int
    secrets: int


@dataclass(frozen=True)
class GenerationInfo:
    """A generation recorded on a host; `unfinished`: its activation did not finish (the next
    update completes it)."""

    generation: int
    id: str
    current: bool
    activated: str | None = None
    unfinished: bool = False
    failed: str | None = None  # why its activation failed (it was switched back)


def host_result(r: HostReport) -> HostResult:
    return HostResult(
        machine=r.machine, changed=r.changed, seconds=round(r.seconds, 3), generation=r.generation,
        error=r.error, id=r.id, target=r.target, hint=r.hint, step=r.step, output=r.output,
        rolled_back_to=r.rolled_back_to, changes=r.changes,
        attempted=bool(r.extra.get("attempted", True)),
        activation_may_be_running=bool(r.extra.get("activation_may_be_running", False)),
        drift=list(r.extra.get("drift", [])), repaired=list(r.extra.get("repaired", [])),
    )  # fmt: skip


# pydantic (which checks JSON arguments and writes their schema) takes each field's docstring as
# its description, and refuses unknown fields
_PYDANTIC = {"use_attribute_docstrings": True, "extra": "forbid"}


@dataclass(frozen=True)
class DeployOptions:
    """How to reach hosts and roll a generation out (`machines update`, `machines install`)."""

    __pydantic_config__ = _PYDANTIC

    target_host: str | None = None
    """`[user@]host[:port]` to use instead of the machine's deploy.targetHost (and its networks)."""
    host_key_check: HostKeyMode | None = None
    """The host's SSH key: `strict` (known_hosts, the clan's keys), `ask`, `tofu` (trust the first
    one), `none`; null: `strict` for an update, `tofu` for an install (the key is new)."""
    check: bool = True
    """Enforce the inventory's constraint checks first."""
    sandbox: bool = True
    """Run vars generator scripts in a sandbox."""
    connect_timeout: float = CONNECT_TIMEOUT
    """Seconds to wait for the SSH connection."""
    yes: bool = False
    """Accept a change of vars recipients (keys added or removed) without asking."""
    network: str | None = None
    """Reach the machines over this network only."""
    dry_run: bool = False
    """Only report what would change; change nothing."""
    jobs: int = DEFAULT_JOBS
    """Hosts updated at once."""
    rollback: bool = True
    """Switch a host back when a step or health check fails (false: leave it as it is)."""
    confirm_timeout: int = CONFIRM_TIMEOUT
    """Seconds a new generation has to be confirmed over a new connection before the host rolls
    back by itself; 0: off."""
    timeout: float = STEP_TIMEOUT
    """Seconds for each short remote step (probe, confirmation, …)."""
    activation_timeout: float = ACTIVATION_TIMEOUT
    """Seconds for upload and activation."""
    canary: int = 0
    """Update the first N machines alone, first."""
    batch_size: int | None = None
    """Then N machines at a time (null: all the rest at once)."""
    max_failures: int | None = None
    """Start no new batch once this many hosts failed (null: never stop; with a canary: 1)."""
    debug: bool = False
    """Keep Python tracebacks of internal errors."""


def _library_options(options: DeployOptions, host_key_check: HostKeyMode) -> object:
    """The deploy library's options (imported here: asyncssh is slow to load)."""
    from dataclasses import asdict

    from pyclan.deploy.transport import HostKeyCheck
    from pyclan.deploy.update import UpdateOptions

    check = HostKeyCheck(options.host_key_check or host_key_check)
    return UpdateOptions(**{**asdict(options), "host_key_check": check})


def _no_progress(machine: str, status: str) -> None:
    """Report nothing."""


@register
def build_machine(
    machine: str, flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> BuiltGeneration:
    """Build a machine's configuration into a generation (manifest, files, activation script) in
    the local cache, without contacting the host."""
    from pyclan.build.generation import build, store

    clan = open_flake(flake, input_overrides)
    clan.require_machines([machine])
    gen = build(clan, machine, write=False)
    path = store(gen)
    m = gen.manifest
    return BuiltGeneration(
        machine=machine, id=gen.id, path=str(path), files=len(m.managed_paths()), packages=len(m.packages),
        users=len(m.users), units=len(m.units), hooks=len(m.hooks), secrets=len(m.secrets),
    )  # fmt: skip


def selected_machines(
    flake: str | None, machines: list[str] | None, tags: list[str] | None, all_machines: bool
) -> list[str]:
    """The machines an update is for (names, or --tags, or all); the CLI shows them as progress rows."""
    chosen = open_flake(flake).select_machines(machines or [], tags or [], all_machines)
    if not chosen:
        raise ClanError.single("usage-error", "--tags", f"no machine carries all of the tags {', '.join(tags or [])}")
    return chosen


@register
def update_machines(
    machines: list[str] | None = None,
    tags: list[str] | None = None,
    all_machines: bool = False,
    options: DeployOptions = DeployOptions(),  # frozen: one shared default is safe
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> list[HostResult]:
    """Deploy machines over SSH (names, or `tags`, or all): upload what changed, activate, roll
    back on failure, put back what was changed by hand; `options.dry_run` only reports what would change."""
    from pyclan.deploy import update as deploy

    clan = open_flake(flake, input_overrides)
    chosen = clan.select_machines(machines or [], tags or [], all_machines)
    if not chosen:
        raise ClanError.single("usage-error", "--tags", f"no machine carries all of the tags {', '.join(tags or [])}")
    opts = _library_options(options, "strict")
    reports = deploy.update(clan, chosen, opts, progress or _no_progress)  # type: ignore[arg-type]
    return [host_result(r) for r in reports]


@register
def install_machine(
    machine: str,
    options: DeployOptions = DeployOptions(),  # frozen: one shared default is safe
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> list[HostResult]:
    """Set up a fresh Debian host reachable as root as `machine`: prepare it, then a first update
    (one result, in a list like `update_machines`)."""
    from pyclan.deploy import update as deploy

    clan = open_flake(flake, input_overrides)
    clan.require_machines([machine])
    opts = _library_options(options, "tofu")
    return [host_result(deploy.install(clan, machine, opts, progress or _no_progress))]  # type: ignore[arg-type]


@register
def rollback_machine(
    machine: str,
    to: int | None = None,
    target_host: str | None = None,
    host_key_check: HostKeyMode = "strict",
    connect_timeout: float = CONNECT_TIMEOUT,
    confirm_timeout: int = CONFIRM_TIMEOUT,
    timeout: float = STEP_TIMEOUT,
    activation_timeout: float = ACTIVATION_TIMEOUT,
    flake: str | None = None,
) -> HostResult:
    """Switch a machine back to an earlier generation (default: the previous one): the same
    activation, checks and confirmation as an update."""
    from pyclan.deploy import update as deploy
    from pyclan.deploy.transport import HostKeyCheck

    clan = open_flake(flake)
    clan.require_machines([machine])
    opts = deploy.UpdateOptions(connect_timeout=connect_timeout, confirm_timeout=confirm_timeout, timeout=timeout,
                                activation_timeout=activation_timeout)  # fmt: skip
    return host_result(deploy.rollback(clan, machine, to, target_host, HostKeyCheck(host_key_check), opts))


@register
def list_generations(
    machine: str, target_host: str | None = None, host_key_check: HostKeyMode = "strict", flake: str | None = None
) -> list[GenerationInfo]:
    """The generations recorded on a machine's host, the current one marked."""
    from pyclan.deploy import update as deploy
    from pyclan.deploy.transport import HostKeyCheck

    clan = open_flake(flake)
    clan.require_machines([machine])
    gens = deploy.generations(clan, machine, target_host, HostKeyCheck(host_key_check))
    items = [
        GenerationInfo(g.number, g.id, g.current, g.activated, g.number == gens.journal, g.failed) for g in gens.items
    ]
    if gens.journal is not None and all(g.generation != gens.journal for g in items):
        items.append(GenerationInfo(gens.journal, "", False, None, True))
    return items


@dataclass(frozen=True)
class DriftItem:
    """One thing on a host that differs from its generation: kind and what (path, unit, package)."""

    kind: str
    what: str


@dataclass(frozen=True)
class MachineStatus:
    """A host's deployed generation against the evaluated one, and its drift (`machines status`)."""

    machine: str
    state: str  # up to date, outdated, never deployed, unreachable, unknown
    target: str | None = None
    generation: int | None = None
    deployed_id: str | None = None
    wanted_id: str | None = None
    drift: list[DriftItem] = field(default_factory=list)
    note: str | None = None
    error: str | None = None


@register
def machines_status(
    machines: list[str] | None = None,
    tags: list[str] | None = None,
    all_machines: bool = False,
    host_key_check: HostKeyMode = "strict",
    connect_timeout: float = CONNECT_TIMEOUT,
    flake: str | None = None,
    input_overrides: dict[str, str] | None = None,
) -> list[MachineStatus]:
    """Per host, in one round trip: deployed vs evaluated generation and what was changed by hand;
    changes nothing."""
    from pyclan.deploy.status import status
    from pyclan.deploy.transport import HostKeyCheck

    clan = open_flake(flake, input_overrides)
    chosen = clan.select_machines(machines or [], tags or [], all_machines)
    found = status(clan, chosen, HostKeyCheck(host_key_check), connect_timeout)
    return [_machine_status(st) for st in found]


def _machine_status(st: Any) -> MachineStatus:
    return MachineStatus(
        machine=st.machine, state="unreachable" if st.error else st.state, target=st.target,
        generation=st.generation, deployed_id=st.deployed_id, wanted_id=st.wanted_id,
        drift=[DriftItem(k, w) for k, w in st.drift], note=st.note, error=st.error,
    )  # fmt: skip
