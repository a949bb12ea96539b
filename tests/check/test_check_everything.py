"""`pyclan check` runs every stage that needs no host and no admin key, and reports all at once (issue 8)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from clans import MakeClan
from typer.testing import CliRunner

from pyclan import api
from pyclan.check import open_for_check, run_check
from pyclan.clan import Clan, open_clan
from pyclan.cli.main import app
from pyclan.errors import ClanError

META = """
[meta]
name = "t"
[machines.jon]
[machines.sara]
[machines.srv]
"""

# One service that can do everything wrong on request.
SERVICE = """
from pydantic import BaseModel
from pyclan.services import (
    Constraints, Generator, InstanceContext, MachineConfig, RoleConstraint, Service, VarFile,
)

service = Service("svc", constraints=Constraints(roles={"server": RoleConstraint(min_machines=1, max_machines=1)}))

class Peer(BaseModel):
    crash: bool = False
    read_var: bool = False
    user: str = "alice"
    unit: str = "app.service"
    package: str = "htop"
    hook: str = "app-reload"
    group: str = "app"
    cycle: bool = False

@service.role("peer", interface=Peer, description="peer")
def peer(ctx: InstanceContext[Peer]) -> MachineConfig:
    s = ctx.settings
    if s.crash:
        raise KeyError("no-such-key")
    if s.read_var:
        ctx.vars.public("token", "id")
    return (
        MachineConfig().user(s.user).group(s.group).unit(s.unit, "[Service]\\nExecStart=/bin/true\\n")
        .package(s.package).hook(s.hook, "true")
    )

@peer.generators
def _(ctx: InstanceContext[Peer]) -> list[Generator]:
    gens = [Generator("token", files={"id": VarFile(secret=False)}, script="echo x > $out/id")]
    if ctx.settings.cycle:
        gens = [
            Generator("a", files={"x": VarFile(secret=False)}, dependencies=["b"], script="true"),
            Generator("b", files={"x": VarFile(secret=False)}, dependencies=["a"], script="true"),
        ]
    return gens

@service.role("server", description="server")
def server(ctx: InstanceContext) -> MachineConfig:
    return MachineConfig()
"""


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`--debug` sets PYCLAN_DEBUG for the process: each test starts without it."""
    monkeypatch.delenv("PYCLAN_DEBUG", raising=False)
    yield


def clan_with(make_clan: MakeClan, instances: str) -> Clan:
    return make_clan(META + instances, services={"svc": SERVICE})


def kinds_and_paths(clan: Clan) -> list[tuple[str, str]]:
    return sorted((p.kind, p.path) for p in run_check(clan).problems)


def test_constraints_are_not_hidden_behind_vars_not_generated(make_clan: MakeClan) -> None:
    clan = clan_with(
        make_clan,
        '[instances.x]\nmodule = { name = "svc", input = "self" }\n'
        "roles.peer.machines.jon.settings.read_var = true\n",
    )
    report = run_check(clan)
    assert [(p.kind, p.path) for p in report.problems] == [("service-error", "svc-x-server-minMachines")]
    assert "requires at least 1 machine(s) but 0 are assigned" in report.problems[0].message
    # the var that is not generated yet is a warning (vars generate creates it)
    assert any("var 'token/id' of machine 'jon' has not been generated yet" in w for w in report.warnings)
    assert not report.ok


def test_everything_at_once(make_clan: MakeClan) -> None:
    clan = clan_with(
        make_clan,
        """
[instances.broken]
module.name = "nonexistent"
roles.peer.machines.ghost = {}
[instances.x]
module = { name = "svc", input = "self" }
roles.peer.machines.jon.settings.crash = true
roles.peer.machines.sara.settings.user = "Bad User"
roles.peer.machines.srv.settings.prot = 1
""",
    )
    assert kinds_and_paths(clan) == [
        ("service-error", "instances.x.roles.peer"),  # jon's crash
        ("service-error", "machines.sara.users.Bad User"),
        ("service-error", "svc-x-server-minMachines"),
        ("unknown-machine", "instances.broken.roles.peer.machines.ghost"),
        ("unknown-module", "instances.broken.module.name"),
        ("unknown-setting", "instances.x.roles.peer.machines.srv.settings.prot"),
    ]


def test_generator_dependency_cycle_is_an_error(make_clan: MakeClan) -> None:
    clan = clan_with(
        make_clan,
        '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.peer.machines.jon.settings.cycle = true\n'
        "roles.server.machines.srv = {}\n",
    )
    [problem] = run_check(clan).problems
    assert problem.kind == "vars-error"
    assert "generators depend on each other in a cycle" in problem.message


@pytest.mark.parametrize(
    ("setting", "value", "where", "message"),
    [
        ("user", "Bad User", "users.Bad User", "invalid user name 'Bad User'"),
        ("group", "-grp", "groups.-grp", "invalid group name '-grp'"),
        ("unit", "app", "units.app", "invalid systemd unit name 'app'"),
        ("package", "Bad_Pkg", "packages", "invalid Debian package name 'Bad_Pkg'"),
        ("hook", "a b", "hooks.a b", "invalid hook name 'a b'"),
    ],
)
def test_config_names_are_checked_where_declared(
    make_clan: MakeClan, setting: str, value: str, where: str, message: str
) -> None:
    clan = clan_with(
        make_clan,
        f'[instances.x]\nmodule = {{ name = "svc", input = "self" }}\n'
        f'roles.peer.machines.jon.settings.{setting} = "{value}"\nroles.server.machines.srv = {{}}\n',
    )
    [problem] = run_check(clan).problems
    assert (problem.kind, problem.path) == ("service-error", f"machines.jon.{where}")
    assert problem.message == f"{message}, declared by service 'svc', instance 'x', role 'peer'"
    # the same problem stops `machines config` (not only the build)
    with pytest.raises(ClanError) as err:
        clan.evaluator.config("jon")
    assert [p.path for p in err.value.problems] == [f"machines.jon.{where}"]


def test_crash_names_file_line_and_machines_once(make_clan: MakeClan) -> None:
    clan = clan_with(
        make_clan,
        '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.peer.settings.crash = true\n'
        'roles.peer.tags = ["all"]\nroles.server.machines.srv = {}\n',
    )
    [problem] = run_check(clan).problems
    line = next(i for i, text in enumerate(SERVICE.splitlines(), 1) if "raise KeyError" in text)
    assert problem.message == (
        "role 'peer' of service 'svc' (instance 'x') raised KeyError: 'no-such-key' "
        f"at services/svc.py:{line} on machines 'jon', 'sara', 'srv'"
    )
    assert problem.hint == "run with --debug to see the traceback"
    with pytest.raises(ClanError) as err:  # the same through `configs` (machines build --all)
        clan.evaluator.configs()
    assert [p.message for p in err.value.problems] == [problem.message]


def test_debug_shows_the_traceback(make_clan: MakeClan) -> None:
    clan = clan_with(
        make_clan,
        '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.peer.machines.jon.settings.crash = true\n'
        "roles.server.machines.srv = {}\n",
    )
    os.environ["PYCLAN_DEBUG"] = "1"  # what `--debug` sets (the fixture removes it)
    [problem] = run_check(clan).problems
    assert problem.hint is not None
    assert problem.hint.startswith("Traceback (most recent call last):")
    assert 'raise KeyError("no-such-key")' in problem.hint


def test_cli_check_prints_problems_warnings_and_exits_1(make_clan: MakeClan) -> None:
    clan = clan_with(
        make_clan,
        '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.peer.machines.jon.settings.read_var = true\n'
        "roles.peer.machines.sara.settings.crash = true\n",
    )
    runner = CliRunner()
    result = runner.invoke(app, ["-C", str(clan.dir), "check"])
    assert result.exit_code == 1
    assert "not been generated yet" in result.output
    assert "svc-x-server-minMachines" in result.output and "raised KeyError" in result.output
    result = runner.invoke(app, ["-C", str(clan.dir), "check", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert not data["ok"] and len(data["errors"]) == 2 and data["warnings"]
    report = api.check_clan(str(clan.dir))  # the JSON API: the same report, every problem in `errors`
    assert not report.ok and len(report.errors) == 2


def test_clean_clan_checks_ok(make_clan: MakeClan) -> None:
    clan = clan_with(
        make_clan,
        '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.peer.machines.jon = {}\n'
        "roles.server.machines.srv = {}\n",
    )
    report = run_check(clan)
    assert report.problems == [] and report.ok
    assert api.check_clan(str(clan.dir)).ok is True


def test_bad_settings_blocks_do_not_stop_the_other_stages(tmp_path: Path) -> None:
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "svc.py").write_text(SERVICE)
    (tmp_path / "clan.toml").write_text(
        META + '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.peer.settings = "oops"\n'
        "roles.peer.machines.jon.settings.crash = true\n"
        '[instances.y]\nmodule.name = "nonexistent"\n'
    )
    report = run_check(open_for_check(tmp_path))
    assert sorted((p.kind, p.path) for p in report.problems) == [
        ("service-error", "instances.x.roles.peer"),  # jon's role function still ran
        ("service-error", "svc-x-server-minMachines"),
        ("settings-type", "instances.x.roles.peer.settings"),
        ("unknown-module", "instances.y.module.name"),
    ]
    with pytest.raises(ClanError) as err:  # every other command still refuses the inventory at load
        open_clan(tmp_path)
    assert [p.kind for p in err.value.problems] == ["settings-type"]
