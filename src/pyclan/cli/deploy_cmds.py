"""Deploy commands: `machines build/update/install/rollback/generations` and `pyclan ssh`.

Thin over `pyclan.api.deploy`; the deploy stack (asyncssh) is imported only when one runs.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pyclan.api import deploy as deploy_api
from pyclan.api.common import open_flake
from pyclan.cli.common import CURRENT, FlakeOpt, JsonOpt, TagsOpt, clan_args, console, emit, flake, say
from pyclan.cli.inventory_cmds import machines_app
from pyclan.errors import ClanError
from pyclan.lock import set_default_wait

if TYPE_CHECKING:
    from pyclan.api.deploy import HostResult


class KeyCheck(StrEnum):
    """How a host's SSH key is checked (pyclan.deploy.transport.HostKeyCheck)."""

    STRICT = "strict"
    ASK = "ask"
    TOFU = "tofu"
    NONE = "none"


TargetOpt = Annotated[
    str | None, typer.Option("--target-host", help="Deploy to [user@]host[:port] instead of the known target.")
]
NetworkOpt = Annotated[str | None, typer.Option("--network", help="Reach the machine over this network only.")]
NoCheckOpt = Annotated[bool, typer.Option("--no-check", help="Deploy even if the inventory's constraint checks fail.")]
NoSandboxOpt = Annotated[bool, typer.Option("--no-sandbox", help="Run vars generator scripts without a sandbox.")]
TimeoutOpt = Annotated[float, typer.Option("--connect-timeout", min=0.1, help="Seconds to wait for a host to answer.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Accept a change of vars recipients (keys added/removed).")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Fail at once if another command is changing the clan.")]
NoRollbackOpt = Annotated[bool, typer.Option("--no-rollback", help="Keep a generation whose step or check failed.")]
ConfirmOpt = Annotated[int, typer.Option("--confirm-timeout", min=0, help="Seconds the host waits for the "
                       "controller to reconnect before it switches back by itself (0: off).")]
StepTimeoutOpt = Annotated[float, typer.Option("--timeout", min=1, help="Deadline in seconds of each short remote "
                           "step (probe, confirmation).")]
ActivationTimeoutOpt = Annotated[float, typer.Option("--activation-timeout", min=1, help="Deadline in seconds of "
                                 "the upload and activation.")]
KeyCheckOpt = Annotated[
    KeyCheck,
    typer.Option(
        "--host-key-check",
        case_sensitive=False,
        help="strict: the host key must be in known_hosts; ask: prompt for an unknown key; "
        "tofu: trust and remember an unknown key; none: do not check.",
    ),
]



def _report_and_exit(reports: list[HostResult], json_out: bool, dry_run: bool = False) -> None:
    if not emit(reports, json_out):
        from pyclan.deploy.progress import summary

        summary(reports, console(), dry_run)  # type: ignore[arg-type]  # the same fields
    if any(r.error for r in reports):
        raise typer.Exit(1)


@machines_app.command("build")
def build_cmd(
    machine: Annotated[str, typer.Argument(help="The machine to build.")],
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Build MACHINE's configuration into a generation (manifest, files, activation script); print its id."""
    gen = deploy_api.build_machine(machine, **clan_args(flake_dir))
    if emit(gen, json_out):
        return
    say(f"{gen.id}  {gen.path}")
    sys.stderr.write(
        f"{machine}: {gen.files} paths, {gen.packages} packages, {gen.users} users, "
        f"{gen.units} units, {gen.hooks} hooks, {gen.secrets} secrets (by reference)\n"
    )


@machines_app.command("update")
def update_cmd(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines to update (default: all).")] = None,
    tags: TagsOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Update every machine.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Hosts updated at once.")] = deploy_api.DEFAULT_JOBS,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = KeyCheck.STRICT,
    no_check: NoCheckOpt = False,
    no_sandbox: NoSandboxOpt = False,
    connect_timeout: TimeoutOpt = deploy_api.CONNECT_TIMEOUT,
    yes: YesOpt = False,
    no_wait: NoWaitOpt = False,
    no_rollback: NoRollbackOpt = False,
    confirm_timeout: ConfirmOpt = deploy_api.CONFIRM_TIMEOUT,
    timeout: StepTimeoutOpt = deploy_api.STEP_TIMEOUT,
    activation_timeout: ActivationTimeoutOpt = deploy_api.ACTIVATION_TIMEOUT,
    canary: Annotated[int, typer.Option("--canary", min=0, help="Update the first N machines alone, first.")] = 0,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1, help="Then N machines at a time.")] = None,
    max_failures: Annotated[int | None, typer.Option("--max-failures", min=1, help="Start no new batch once K "
                            "hosts failed (default with --canary: 1).")] = None,
    repair: Annotated[bool, typer.Option("--repair", hidden=True, help="Accepted for compatibility: every "
                      "update puts back what was changed by hand.")] = False,
    json_out: JsonOpt = False,
    network: NetworkOpt = None,
    flake_dir: FlakeOpt = None,
) -> None:
    """Deploy machines over SSH: upload what changed, activate, roll back on failure."""
    from pyclan.deploy.progress import ProgressView

    set_default_wait(not no_wait)
    selected = deploy_api.selected_machines(flake(flake_dir), machines, tags, all_)
    with ProgressView(selected, console(stderr=True), "checking" if dry_run else "updating") as view:
        options = deploy_api.DeployOptions(
            target_host=target_host, host_key_check=host_key_check.value, check=not no_check, sandbox=not no_sandbox,
            connect_timeout=connect_timeout, yes=yes, network=network, debug=CURRENT.debug, dry_run=dry_run,
            jobs=jobs, rollback=not no_rollback, confirm_timeout=confirm_timeout, timeout=timeout,
            activation_timeout=activation_timeout, canary=canary, batch_size=batch_size, max_failures=max_failures,
        )  # fmt: skip
        reports = deploy_api.update_machines(selected, options=options, progress=view.update, **clan_args(flake_dir))
    _report_and_exit(reports, json_out, dry_run)


@machines_app.command("install")
def install_cmd(
    machine: Annotated[str, typer.Argument(help="The machine to install.")],
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = KeyCheck.TOFU,
    no_check: NoCheckOpt = False,
    no_sandbox: NoSandboxOpt = False,
    connect_timeout: TimeoutOpt = deploy_api.CONNECT_TIMEOUT,
    yes: YesOpt = False,
    json_out: JsonOpt = False,
    network: NetworkOpt = None,
    flake_dir: FlakeOpt = None,
) -> None:
    """Set up a fresh Debian host reachable as root as MACHINE: prepare it, then a first update."""
    from pyclan.deploy.progress import ProgressView

    args = clan_args(flake_dir)
    open_flake(args["flake"]).require_machines([machine])
    with ProgressView([machine], console(stderr=True), "installing") as view:
        options = deploy_api.DeployOptions(
            target_host=target_host, host_key_check=host_key_check.value, check=not no_check, sandbox=not no_sandbox,
            connect_timeout=connect_timeout, yes=yes, network=network, debug=CURRENT.debug,
        )  # fmt: skip
        reports = deploy_api.install_machine(machine, options=options, progress=view.update, **args)
    _report_and_exit(reports, json_out)


@machines_app.command("rollback")
def rollback_cmd(
    machine: Annotated[str, typer.Argument(help="The machine to roll back.")],
    to: Annotated[int | None, typer.Option("--to", help="The generation to switch to (default: previous).")] = None,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = KeyCheck.STRICT,
    connect_timeout: TimeoutOpt = deploy_api.CONNECT_TIMEOUT,
    confirm_timeout: ConfirmOpt = deploy_api.CONFIRM_TIMEOUT,
    timeout: StepTimeoutOpt = deploy_api.STEP_TIMEOUT,
    activation_timeout: ActivationTimeoutOpt = deploy_api.ACTIVATION_TIMEOUT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Switch MACHINE back to an earlier generation (its files, units, users and packages)."""
    report = deploy_api.rollback_machine(
        machine, to, target_host, host_key_check.value, connect_timeout, confirm_timeout, timeout,
        activation_timeout, flake=flake(flake_dir),
    )  # fmt: skip
    if emit(report, json_out):
        pass
    elif report.error is None:
        state = "switched to" if report.changed else "already on"
        say(f"{machine}: {state} generation {report.generation}")
    else:
        from pyclan.deploy.progress import summary

        summary([report], console())  # type: ignore[list-item]  # the same fields
    if report.error:
        raise typer.Exit(1)


@machines_app.command("generations")
def generations_cmd(
    machine: Annotated[str, typer.Argument(help="The machine.")],
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = KeyCheck.STRICT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """List the generations recorded on MACHINE (the current one marked)."""
    gens = deploy_api.list_generations(machine, target_host, host_key_check.value, flake=flake(flake_dir))
    if emit(gens, json_out):
        return
    from rich.table import Table

    table = Table("generation", "id", "activated", "current", "result", show_edge=False)
    for g in gens:
        result = f"[red]failed: {g.failed}[/]" if g.failed else ""
        table.add_row(str(g.generation), g.id[:12] or "-", g.activated or "-", "*" if g.current else "", result)
    console().print(table)
    for g in gens:
        if g.unfinished:
            console(stderr=True).print(
                f"[yellow]note:[/] the activation of generation {g.generation} did not finish; "
                "the next `pyclan machines update` completes it",
                highlight=False,
            )


@machines_app.command("status")
def status_cmd(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines to look at (default: all).")] = None,
    tags: TagsOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Every machine.")] = False,
    host_key_check: KeyCheckOpt = KeyCheck.STRICT,
    connect_timeout: TimeoutOpt = deploy_api.CONNECT_TIMEOUT,
    json_out: JsonOpt = False,
    flake_dir: FlakeOpt = None,
) -> None:
    """Deployed generation vs the evaluated one, and drift (files, units, packages changed by hand); changes nothing."""
    found = deploy_api.machines_status(
        machines, tags, all_, host_key_check.value, connect_timeout, **clan_args(flake_dir)
    )
    if not emit(found, json_out):
        from rich.table import Table

        from pyclan.deploy.status import drift_line

        table = Table("machine", "target", "state", "generation", "drift", show_edge=False)
        for st in found:
            table.add_row(st.machine, st.target or "-", st.state, "-" if st.generation is None else str(st.generation),
                          str(len(st.drift)) if st.drift else "")  # fmt: skip
        out = console()
        out.print(table)
        for st in found:
            lines = [f"error: {st.error}"] if st.error else []
            lines += [drift_line(d.kind, d.what) for d in st.drift] + ([st.note] if st.note else [])
            for line in lines:
                out.print(f"{st.machine}: {line}", highlight=False, markup=False)
    if any(st.error for st in found):
        raise typer.Exit(1)


def ssh_cmd(
    ctx: typer.Context,
    machine: Annotated[str, typer.Argument(help="The machine.")],
    command: Annotated[bool, typer.Option("-c", "--command", help="Run the remaining arguments as a command.")] = False,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = KeyCheck.STRICT,
    flake_dir: FlakeOpt = None,
    network: NetworkOpt = None,
) -> None:
    """Open a shell on MACHINE, or run `-c CMD…` there (exit status: the command's).

    Interactive, so not an API function: it replaces this process with ssh.
    """
    from pyclan.deploy.shell import openssh_argv, run_command
    from pyclan.deploy.targets import resolve_target
    from pyclan.deploy.transport import HostKeyCheck

    # After MACHINE, pyclan's own options may still come; `-c` ends them: the rest is the command
    # verbatim, options and all (`pyclan ssh m -c ping -c 3 host`).
    args = list(ctx.args)
    while args and args[0] != "--" and args[0] not in ("-c", "--command"):
        opt, _, inline = args.pop(0).partition("=")
        if opt not in ("--target-host", "--host-key-check", "--network") or not (inline or args):
            raise ClanError.single(
                "usage-error",
                opt,
                f"unexpected {opt!r} after the machine name",
                hint="pyclan ssh MACHINE [--target-host H] [--network NAME] [--host-key-check MODE] [-c CMD…]",
            )
        value = inline or args.pop(0)
        if opt == "--target-host":
            target_host = value
        elif opt == "--network":
            network = value
        else:
            try:
                host_key_check = KeyCheck(value)
            except ValueError:
                raise ClanError.single(
                    "usage-error",
                    opt,
                    f"invalid host key check {value!r}",
                    hint="one of " + ", ".join(m.value for m in KeyCheck),
                ) from None
    if args:
        command, args = True, args[1:]
    clan = open_flake(flake(flake_dir), clan_args(flake_dir)["input_overrides"])
    clan.require_machines([machine])
    target = resolve_target(clan, machine, target_host, network=network)
    if command and not args:
        raise ClanError.single("usage-error", "-c", "-c needs a command", hint="pyclan ssh MACHINE -c uname -a")
    check = HostKeyCheck(host_key_check.value)
    if args:
        raise typer.Exit(run_command(target, check, " ".join(args)))
    argv = openssh_argv(target, check)
    sys.stdout.flush()
    os.execv(argv[0], argv)


ssh_command: tuple[Any, dict[str, Any]] = (
    ssh_cmd,
    {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False}},
)
