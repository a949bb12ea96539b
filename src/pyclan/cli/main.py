"""The `pyclan` command: a thin face over the JSON API (one sub-app per concept).

Start-up matters (every command pays it): the sub-apps are imported only when their command
runs, `--help` lists them from the table below without importing them, and help is rendered
without rich. Errors are handled once, here, for every command.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from pyclan import __version__
from pyclan.cli import common
from pyclan.cli.common import CURRENT, Invocation, print_problems

# pyclan.errors is imported when something fails: `--help` does not pay for it.

# name → (module, attribute, one-line help, hidden). The attribute is a typer app or a command
# function (or a (function, settings) pair).
LAZY: dict[str, tuple[str, str, str, bool]] = {
    "init": ("pyclan.cli.inventory_cmds", "init_cmd", "Create a working starter clan.", False),
    "show": ("pyclan.cli.inventory_cmds", "show_cmd", "Print the clan's name, description and domain.", False),
    "check": ("pyclan.cli.inventory_cmds", "check_cmd", "Load, resolve and evaluate; report every problem.", False),
    "machines": ("pyclan.cli.deploy_cmds", "machines_app", "Machines: list, create, config, build, deploy.", False),
    "m": ("pyclan.cli.deploy_cmds", "machines_app", "", True),
    "services": ("pyclan.cli.inventory_cmds", "services_app", "Service modules available to this clan.", False),
    "inventory": ("pyclan.cli.inventory_cmds", "inventory_app", "The inventory as data, for tools.", False),
    "vars": ("pyclan.cli.vars_cmds", "vars_app", "Vars: generated secrets and public values.", False),
    "va": ("pyclan.cli.vars_cmds", "vars_app", "", True),
    "inputs": ("pyclan.cli.inputs_cmds", "inputs_app", "Inputs: service modules from git, folders, packages.", False),
    "hosts": ("pyclan.cli.hosts", "app", "Local test hosts booted with systemd-nspawn.", False),
    "ssh": ("pyclan.cli.deploy_cmds", "ssh_command", "Open a shell on a machine, or run a command there.", False),
    "api": ("pyclan.cli.api_cmds", "api_app", "Call library functions with JSON (for tools and UIs).", False),
    "backups": ("pyclan.cli.backups_cmds", "backups_app", "Backups of machines' state: list, create, restore.", False),
    "b": ("pyclan.cli.backups_cmds", "backups_app", "", True),
    "network": ("pyclan.cli.network_cmds", "network_app", "The clan's networks: list, ping, overview.", False),
    "net": ("pyclan.cli.network_cmds", "network_app", "", True),
    "serve": ("pyclan.cli.serve_cmds", "serve_cmd", "Serve the API and the web UI over HTTP (token-protected).", False),
    "instances": ("pyclan.cli.write_cmds", "instances_app", "Service instances: list, show, create, members.", False),
    "settings": ("pyclan.cli.write_cmds", "settings_app", "Settings of instances: get, set, unset.", False),
    "meta": ("pyclan.cli.write_cmds", "meta_app", "The clan's meta: show, set.", False),
    "tags": ("pyclan.cli.write_cmds", "tags_app", "Tags: list, set an inventory tag list.", False),
}


def _load(name: str) -> Any:
    module, attr, _, _ = LAZY[name]
    return getattr(importlib.import_module(module), attr)


class PyclanGroup(TyperGroup):
    """The root command: sub-apps loaded on first use, and the one error handler."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(set(self.commands) | set(LAZY))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in LAZY:
            target = _load(cmd_name)
            command: Any
            if isinstance(target, typer.Typer):
                command = typer.main.get_group(target)
            else:  # a command function, or a (function, settings) pair
                fn, settings = target if isinstance(target, tuple) else (target, {})
                single = typer.Typer()
                single.command(cmd_name, **settings)(fn)
                command = typer.main.get_command(single)
            command.name = cmd_name
            command.hidden = LAZY[cmd_name][3]
            self.commands[cmd_name] = command
        return self.commands.get(cmd_name)

    def get_help(self, ctx: Any) -> str:
        text: str = super().get_help(ctx)
        if ctx.parent is None:  # the root help: `pyclan --help` prints it from a cache next time
            from pyclan.cli.launch import remember_help

            remember_help(text)
        return text

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [
            (name, self.commands[name].get_short_help_str(80) if name in self.commands else LAZY[name][2])
            for name in self.list_commands(ctx)
            if not (LAZY[name][3] if name in LAZY else self.commands[name].hidden)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args: Any = None, *rest: Any, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            argv, overrides = take_overrides(argv)
        except Exception as err:
            from pyclan.errors import ClanError

            if not isinstance(err, ClanError):
                raise
            print_problems(err.problems, "--json" in argv)
            sys.exit(1)
        extra["obj"] = {"input_overrides": overrides}
        return super().main(argv, *rest, **extra)

    def invoke(self, ctx: Any) -> Any:
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        as_json = "--json" in rest[: rest.index("--")] if "--" in rest else "--json" in rest
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            from pyclan.errors import ClanError, Problem

            if isinstance(exc, ClanError):
                from pyclan.api.common import with_positions

                print_problems(with_positions(exc.problems, common.flake(_own_flake(rest))), as_json)
                ctx.exit(1)
            if CURRENT.debug or type(exc).__module__.startswith(("typer", "click")):
                raise
            hint = "run with --debug for a traceback"
            problem = Problem("internal-error", "", f"{type(exc).__name__}: {exc}", hint=hint)
            print_problems([problem], as_json)
            ctx.exit(2)


def _own_flake(args: list[str]) -> Path | None:
    """A subcommand's own `-C/--flake DIR` (the error handler runs outside that command)."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-C", "--flake") and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--flake="):
            return Path(arg.removeprefix("--flake="))
    return None


app = typer.Typer(
    name="pyclan",
    cls=PyclanGroup,
    help="Declarative distributed services for fleets of Linux machines (Clan's model, in Python).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        common.say(f"pyclan {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    flake: common.FlakeOpt = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks of internal errors.")] = False,
    pretty: Annotated[bool, typer.Option("--pretty", help="Indent JSON output (it is on a terminal).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print pyclan's version.")
    ] = False,
) -> None:
    """Global options. Also: `--override-input NAME PATH` (repeatable) uses PATH for input NAME.
    `-C DIR` and `--json` are accepted by every command too."""
    overrides = (ctx.obj or {}).get("input_overrides", {}) if isinstance(ctx.obj, dict) else {}
    fresh = Invocation(flake=flake, debug=debug, pretty=pretty, input_overrides=dict(overrides))
    for key, value in vars(fresh).items():
        setattr(CURRENT, key, value)
    if debug:  # service-code crashes put their traceback in the hint (read by the evaluator)
        os.environ["PYCLAN_DEBUG"] = "1"


def take_overrides(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Pull `--override-input NAME PATH` pairs out of argv (typer has no two-value lists), and
    spell `--tags a b` (several values, like Clan) as `--tags a --tags b`."""
    rest: list[str] = []
    overrides: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or (arg in ("-c", "--command") and "ssh" in rest):
            rest.extend(argv[i:])  # the rest belongs to someone else (a remote command)
            break
        if arg == "--override-input":
            if i + 2 >= len(argv):
                from pyclan.errors import ClanError

                raise ClanError.single("usage-error", "--override-input", "--override-input needs NAME and PATH")
            overrides[argv[i + 1]] = str(Path(argv[i + 2]).resolve())
            i += 3
            continue
        if arg == "--tags":
            i += 1
            values = 0
            while i < len(argv) and (not argv[i].startswith("-") or values == 0):
                rest += ["--tags", argv[i]]
                values += 1
                i += 1
            if values == 0:
                rest.append("--tags")
            continue
        rest.append(arg)
        i += 1
    return rest, overrides


def run() -> None:
    """Console-script entry: no input ever produces a Python traceback for a user error."""
    try:
        app(args=sys.argv[1:], prog_name="pyclan", standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "common", "run"]
