"""Deploy commands: `machines build/update/install/rollback/generations` and `pyclan ssh`."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from pyclan.clan import Clan
from pyclan.cli.common import OPTIONS, console, err_console, fail, get_clan, print_json
from pyclan.deploy import update as deploy
from pyclan.deploy.build import build, store
from pyclan.deploy.progress import ProgressView, summary
from pyclan.deploy.runner import HostReport
from pyclan.deploy.transport import CONNECT_TIMEOUT, HostKeyCheck
from pyclan.errors import ClanError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TargetOpt = Annotated[
    str | None, typer.Option("--target-host", help="Deploy to \\[user@]host\\[:port] instead of the known target.")
]
NetworkOpt = Annotated[str | None, typer.Option("--network", help="Reach the machine over this network only.")]
NoCheckOpt = Annotated[bool, typer.Option("--no-check", help="Deploy even if the inventory's constraint checks fail.")]
NoSandboxOpt = Annotated[bool, typer.Option("--no-sandbox", help="Run vars generator scripts without a sandbox.")]
TimeoutOpt = Annotated[float, typer.Option("--connect-timeout", min=0.1, help="Seconds to wait for a host to answer.")]


KeyCheckOpt = Annotated[
    HostKeyCheck,
    typer.Option(
        "--host-key-check",
        case_sensitive=False,
        help="strict: the host key must be in known_hosts; ask: prompt for an unknown key; "
        "tofu: trust and remember an unknown key; none: do not check.",
    ),
]


def register(app: typer.Typer) -> None:
    from pyclan.cli.inventory_cmds import machines_app

    machines_app.command("build")(build_cmd)
    machines_app.command("update")(update_cmd)
    machines_app.command("install")(install_cmd)
    machines_app.command("rollback")(rollback_cmd)
    machines_app.command("generations")(generations_cmd)
    app.command(
        "ssh",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "allow_interspersed_args": False},
    )(ssh_cmd)


def _report_and_exit(reports: list[HostReport], json_out: bool, dry_run: bool = False) -> None:
    if json_out:
        print_json([r.to_json() for r in reports])
    else:
        summary(reports, console, dry_run)
    if any(r.error for r in reports):
        raise typer.Exit(1)


def build_cmd(
    machine: Annotated[str, typer.Argument(help="The machine to build.")],
    json_out: JsonOpt = False,
) -> None:
    """Build MACHINE's configuration into a generation (manifest, files, activation script); print its id."""
    try:
        clan = _clan_with(machine)
        gen = build(clan, machine, write=False)
        path = store(gen)
    except ClanError as err:
        fail(err, json_out)
    m = gen.manifest
    if json_out:
        print_json(
            {
                "machine": machine,
                "id": gen.id,
                "path": str(path),
                "files": len(m.managed_paths()),
                "packages": len(m.packages),
                "users": len(m.users),
                "units": len(m.units),
                "secrets": len(m.secrets),
            }
        )
        return
    console.print(f"{gen.id}  {path}", highlight=False)
    err_console.print(
        f"{machine}: {len(m.managed_paths())} paths, {len(m.packages)} packages, {len(m.users)} users, "
        f"{len(m.units)} units, {len(m.hooks)} hooks, {len(m.secrets)} secrets (by reference)",
        highlight=False,
    )


def _clan_with(machine: str) -> Clan:
    """The clan, after checking that `machine` is one of its machines (with a did-you-mean)."""
    clan = get_clan()
    deploy.select_machines(clan, [machine])
    return clan


def _options(
    target_host: str | None,
    host_key_check: HostKeyCheck,
    no_check: bool,
    no_sandbox: bool,
    connect_timeout: float,
    **extra: Any,
) -> deploy.UpdateOptions:
    """The UpdateOptions that `update` and `install` share, from their CLI flags."""
    return deploy.UpdateOptions(
        target_host=target_host,
        host_key_check=host_key_check,
        check=not no_check,
        sandbox=not no_sandbox,
        connect_timeout=connect_timeout,
        debug=OPTIONS.debug,
        **extra,
    )


def update_cmd(
    machines: Annotated[list[str] | None, typer.Argument(help="Machines to update (default: all).")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tags", help="Only machines carrying all these tags.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Update every machine.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Hosts updated at once.")] = deploy.DEFAULT_JOBS,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = HostKeyCheck.STRICT,
    no_check: NoCheckOpt = False,
    no_sandbox: NoSandboxOpt = False,
    connect_timeout: TimeoutOpt = CONNECT_TIMEOUT,
    json_out: JsonOpt = False,
    network: NetworkOpt = None,
) -> None:
    """Deploy machines over SSH: upload what changed, activate, roll back on failure."""
    opts = _options(target_host, host_key_check, no_check, no_sandbox, connect_timeout, dry_run=dry_run, jobs=jobs,
                    network=network)
    try:
        clan = get_clan()
        selected = deploy.select_machines(clan, machines or [], tags or [], all_)
        with ProgressView(selected, err_console, "checking" if dry_run else "updating") as view:
            reports = deploy.update(clan, selected, opts, view.update)
    except ClanError as err:
        fail(err, json_out)
    _report_and_exit(reports, json_out, dry_run)


def install_cmd(
    machine: Annotated[str, typer.Argument(help="The machine to install.")],
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = HostKeyCheck.TOFU,
    no_check: NoCheckOpt = False,
    no_sandbox: NoSandboxOpt = False,
    connect_timeout: TimeoutOpt = CONNECT_TIMEOUT,
    json_out: JsonOpt = False,
    network: NetworkOpt = None,
) -> None:
    """Set up a fresh Debian host reachable as root as MACHINE: prepare it, then a first update."""
    opts = _options(target_host, host_key_check, no_check, no_sandbox, connect_timeout, network=network)
    try:
        clan = _clan_with(machine)
        with ProgressView([machine], err_console, "installing") as view:
            report = deploy.install(clan, machine, opts, view.update)
    except ClanError as err:
        fail(err, json_out)
    _report_and_exit([report], json_out)


def rollback_cmd(
    machine: Annotated[str, typer.Argument(help="The machine to roll back.")],
    to: Annotated[int | None, typer.Option("--to", help="The generation to switch to (default: previous).")] = None,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = HostKeyCheck.STRICT,
    json_out: JsonOpt = False,
) -> None:
    """Switch MACHINE back to an earlier generation (its files, units, users and packages)."""
    try:
        clan = _clan_with(machine)
        report = deploy.rollback(clan, machine, to, target_host, host_key_check)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json(report.to_json())
    elif report.error is None:
        state = "switched to" if report.changed else "already on"
        console.print(f"{machine}: {state} generation {report.generation}", highlight=False)
    else:
        summary([report], console)
    if report.error:
        raise typer.Exit(1)


def generations_cmd(
    machine: Annotated[str, typer.Argument(help="The machine.")],
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = HostKeyCheck.STRICT,
    json_out: JsonOpt = False,
) -> None:
    """List the generations recorded on MACHINE (the current one marked)."""
    try:
        clan = _clan_with(machine)
        gens = deploy.generations(clan, machine, target_host, host_key_check)
    except ClanError as err:
        fail(err, json_out)
    if json_out:
        print_json([g.to_json() for g in gens.items])
        return
    table = Table("generation", "id", "activated", "current", show_edge=False)
    for g in gens.items:
        table.add_row(str(g.number), g.id[:12], g.activated or "-", "*" if g.current else "")
    console.print(table)
    if gens.journal is not None:
        err_console.print(
            f"[yellow]note:[/] the activation of generation {gens.journal} did not finish; "
            "the next `pyclan machines update` completes it",
            highlight=False,
        )


def ssh_cmd(
    ctx: typer.Context,
    machine: Annotated[str, typer.Argument(help="The machine.")],
    command: Annotated[bool, typer.Option("-c", "--command", help="Run the remaining arguments as a command.")] = False,
    target_host: TargetOpt = None,
    host_key_check: KeyCheckOpt = HostKeyCheck.STRICT,
    network: NetworkOpt = None,
) -> None:
    """Open a shell on MACHINE, or run `-c CMD…` there (exit status: the command's)."""
    from pyclan.deploy.shell import openssh_argv, run_command
    from pyclan.deploy.targets import resolve_target

    # After MACHINE, pyclan's own options may still come; `-c` ends them: the rest is the command
    # verbatim, options and all (`pyclan ssh m -c ping -c 3 host`).
    args = list(ctx.args)
    while args and args[0] != "--" and args[0] not in ("-c", "--command"):
        opt, _, inline = args.pop(0).partition("=")
        if opt not in ("--target-host", "--host-key-check", "--network") or not (inline or args):
            fail(
                ClanError.single(
                    "usage-error",
                    opt,
                    f"unexpected {opt!r} after the machine name",
                    hint="pyclan ssh MACHINE [--target-host H] [--network NAME] [--host-key-check MODE] [-c CMD…]",
                )
            )
        value = inline or args.pop(0)
        if opt == "--target-host":
            target_host = value
        elif opt == "--network":
            network = value
        else:
            try:
                host_key_check = HostKeyCheck(value)
            except ValueError:
                fail(
                    ClanError.single(
                        "usage-error",
                        opt,
                        f"invalid host key check {value!r}",
                        hint="one of " + ", ".join(m.value for m in HostKeyCheck),
                    )
                )
    if args:
        command, args = True, args[1:]
    try:
        clan = _clan_with(machine)
        target = resolve_target(clan, machine, target_host, network=network)
        if command and not args:
            raise ClanError.single("usage-error", "-c", "-c needs a command", hint="pyclan ssh MACHINE -c uname -a")
        if args:
            status = run_command(target, host_key_check, " ".join(args))
        else:
            argv = openssh_argv(target, host_key_check)
            sys.stdout.flush()
            os.execv(argv[0], argv)
    except ClanError as err:
        fail(err)
    raise typer.Exit(status)
