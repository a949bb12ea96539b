"""A role function that reads nothing of its own machine runs once per distinct settings, and
every member gets what calling it for that member would have given (evaluator._Watched)."""

from __future__ import annotations

from collections.abc import Callable

from pyclan.check import run_check
from pyclan.clan import Clan

MakeClan = Callable[..., Clan]

SERVICE = '''
import dataclasses
from pydantic import BaseModel
from pyclan.services import InstanceContext, MachineConfig, Service

service = Service("probe")
CALLS = []


class Settings(BaseModel):
    word: str = "hi"
    mode: str = "plain"
    extra: str = ""


@service.role("member", interface=Settings)
def member(ctx: InstanceContext[Settings]) -> MachineConfig:
    CALLS.append(ctx.settings.word)
    mode = ctx.settings.mode
    if mode == "crash":
        raise RuntimeError("boom")
    cfg = MachineConfig().file(f"/etc/{ctx.instance_name}", ctx.settings.word + "\\n")
    if mode == "machine":
        cfg.file("/etc/me", ctx.machine.name)
    elif mode == "exports":
        cfg.file("/etc/key", ",".join(ctx.mk_exports({})))
    elif mode == "vars":
        cfg.file("/etc/vars", type(ctx.vars).__name__)
    elif mode == "extend":
        cfg.file("/etc/ext", ctx.extend_settings({"extra": "more"}).extra)
    elif mode == "replace":
        cfg.file("/etc/other", dataclasses.replace(ctx, settings=Settings(word="x")).settings.word)
    return cfg
'''

TOML = """
[meta]
name = "t"
[machines.a]
tags = ["t"]
[machines.b]
tags = ["t"]
[machines.c]
tags = ["t", "odd"]
[machines.d]
[instances.probe]
module.input = "self"
roles.member.tags.t = {}
roles.member.tags.odd.settings.word = "odd"
roles.member.machines.d.settings = { word = "own", mode = "%s" }
roles.member.settings.mode = "%s"
"""


def _calls(clan: Clan) -> list[str]:
    """The settings words the role function was called with."""
    fn = next(iter(clan.resolved.instances.values())).service.roles["member"].per_instance
    assert fn is not None
    calls: list[str] = fn.__globals__["CALLS"]
    return calls


def test_a_function_not_reading_its_machine_runs_once_per_distinct_settings(make_clan: MakeClan) -> None:
    clan = make_clan(TOML % ("plain", "plain"), services={"probe": SERVICE})
    configs = clan.evaluator.configs()
    # a and b share one settings object; c (tag `odd`) and d (own settings) have their own
    assert sorted(_calls(clan)) == ["hi", "odd", "own"]
    assert {m: c.files["/etc/probe"].content for m, c in configs.items()} == {
        "a": "hi\n", "b": "hi\n", "c": "odd\n", "d": "own\n",
    }  # fmt: skip
    configs["a"].files.clear()  # each machine's config is its own
    assert "/etc/probe" in configs["b"].files
    assert "/etc/probe" in clan.evaluator.config("a").files


def test_a_function_reading_anything_of_its_machine_runs_for_every_member(make_clan: MakeClan) -> None:
    for mode in ("machine", "exports", "vars", "extend", "replace"):
        clan = make_clan(TOML % (mode, mode), services={"probe": SERVICE}, name=mode)
        configs = clan.evaluator.configs()
        assert sorted(_calls(clan)) == ["hi", "hi", "odd", "own"], mode
        if mode == "machine":
            assert {m: c.files["/etc/me"].content for m, c in configs.items()} == {m: m for m in "abcd"}
        if mode == "exports":
            assert configs["a"].files["/etc/key"].content != configs["b"].files["/etc/key"].content
        if mode == "extend":
            assert configs["b"].files["/etc/ext"].content == "more"


def test_a_crash_is_reported_for_every_member_that_shares_the_settings(make_clan: MakeClan) -> None:
    clan = make_clan(TOML % ("plain", "crash"), services={"probe": SERVICE})
    report = run_check(clan)
    messages = [p.message for p in report.problems]
    assert any("raised RuntimeError: boom" in m and "'a', 'b', 'c'" in m for m in messages), messages
