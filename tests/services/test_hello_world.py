"""hello-world: greetings per instance and role, and the greet-world command, run for real."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from pyclan.clan import Clan
from pyclan.errors import ClanError

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

CLAN = """
[meta]
name = "hello"
[machines.jon]
[machines.sara]
[instances.hello]
module.name = "hello-world"
roles.morning.machines.jon = {}
roles.evening.machines.sara.settings.greeting = "Good night"
"""


def test_greetings_follow_roles_and_settings(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN)
    resolved = clan.resolved.to_json()
    assert resolved["machines"]["jon"]["instances"]["hello"]["roles"] == {
        "morning": {"settings": {"greeting": "Good morning"}}
    }
    assert resolved["machines"]["sara"]["instances"]["hello"]["roles"]["evening"]["settings"] == {
        "greeting": "Good night"
    }
    jon, sara = clan.evaluator.config("jon"), clan.evaluator.config("sara")
    assert jon.files["/etc/hello-world/hello"].content == "Good morning World!\n"
    assert sara.files["/etc/hello-world/hello"].content == "Good night World!\n"
    assert jon.files["/usr/local/bin/greet-world"].mode == "0755"


def test_greet_world_prints_every_greeting_with_the_machine_name(make_clan: MakeClan, isolated: Isolated) -> None:
    clan = make_clan(
        CLAN
        + """
[instances.second]
module.name = "hello-world"
roles.evening.machines.jon = {}
"""
    )
    cfg = clan.evaluator.config("jon")
    files = {path: spec.content.encode() for path, spec in cfg.files.items()}
    done = isolated("sh /usr/local/bin/greet-world", files=files)
    assert done.stdout.splitlines() == [
        "Good morning World! I'm jon",
        "Good evening World! I'm jon",
    ]


def test_unknown_setting_is_reported_with_a_suggestion(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN.replace('settings.greeting = "Good night"', 'settings.greting = "Good night"'))
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    problem = err.value.problems[0]
    assert problem.kind == "unknown-setting"
    assert problem.path.endswith("machines.sara.settings.greting")
    assert "greeting" in (problem.hint or "") + problem.message


def test_one_machine_in_both_roles_of_one_instance_is_a_conflict(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN.replace("roles.evening.machines.sara", "roles.evening.machines.jon"))
    with pytest.raises(ClanError) as err:
        clan.evaluator.config("jon")
    problem = err.value.problems[0]
    assert problem.kind == "config-conflict"
    assert "/etc/hello-world/hello" in problem.path
    assert "role 'evening'" in problem.message and "role 'morning'" in problem.message
