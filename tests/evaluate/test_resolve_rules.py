"""Role membership, module resolution, constraints and exports: one test per rule of clan-semantics."""

from __future__ import annotations

import json

import pytest
from clans import MakeClan

from pyclan.errors import ClanError

# A test service recording what perInstance/perMachine receive, as files.
PROBE = """
import json
from pydantic import BaseModel, Field
from pyclan.services import InstanceContext, MachineConfig, MachineContext, Service, Constraints, RoleConstraint

service = Service("probe", constraints=Constraints(max_instances=1, roles={
    "controller": RoleConstraint(min_machines=1, max_machines=1)}), exports_out=["peer"])

class Peer(BaseModel):
    timeout: str = "default"
    items: list[str] = Field(default_factory=list)

@service.role("peer", interface=Peer, description="peer")
def peer(ctx: InstanceContext[Peer]) -> MachineConfig:
    seen = {
        "machine": {"name": ctx.machine.name, "roles": list(ctx.machine.roles)},
        "settings": ctx.settings.model_dump(),
        "roles": {r: sorted(v.machines) for r, v in ctx.roles.items()},
        "exports": sorted(ctx.exports),
    }
    return MachineConfig().file(f"/probe/{ctx.instance_name}/peer", json.dumps(seen))

@peer.exports
def _(ctx):
    return ctx.mk_exports({"peer": {"name": ctx.machine.name}})

@service.role("controller", interface=Peer, description="controller")
def controller(ctx: InstanceContext[Peer]) -> MachineConfig:
    return MachineConfig().file(f"/probe/{ctx.instance_name}/controller", json.dumps(ctx.settings.model_dump()))

@service.per_machine
def per_machine(ctx: MachineContext) -> MachineConfig:
    seen = {"roles": list(ctx.machine.roles), "instances": {
        i: {r: sorted(v.machines) for r, v in view.roles.items()} for i, view in ctx.instances.items()}}
    return MachineConfig().file("/probe/per-machine", json.dumps(seen))
"""

MACHINES = """
[meta]
name = "test"
[machines.jon]
tags = ["laptop"]
[machines.sara]
tags = ["laptop", "desk"]
[machines.srv]
tags = ["server"]
"""


def probe_file(clan, machine: str, path: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(clan.evaluator.config(machine).files[path].content)


def test_R4_1_members_are_machines_union_tags_sorted(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.machines.srv = {}
roles.peer.tags = ["laptop"]
roles.controller.machines.srv = {}
""",
        services={"probe": PROBE},
    )
    data = clan.resolved.to_json()
    assert data["members"] == {"a": {"controller": ["srv"], "peer": ["jon", "sara", "srv"]}}
    assert set(data["machines"]["jon"]["instances"]["a"]["roles"]) == {"peer"}


def test_R4_2_tags_resolve_only_inventory_machines(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[tags]
extra = ["jon", "ghost"]
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.tags = ["extra"]
roles.controller.machines.srv = {}
""",
        services={"probe": PROBE},
    )
    assert clan.resolved.to_json()["members"]["a"]["peer"] == ["jon"]


def test_R4_3_unknown_tag_is_a_warning(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.tags = ["nope"]
roles.controller.machines.srv = {}
""",
        services={"probe": PROBE},
    )
    warnings = clan.resolved.warnings
    assert warnings[0].startswith(
        "Service instance 'a': - peer tags: no machine with tag 'nope' found.\nAvailable tags: "
    )
    # the tags machines carry (R1.5), as Clan lists them: machines in reverse name order, JSON without spaces
    assert warnings[0].endswith('Available tags: ["server","all","nixos","laptop","desk"]')


def test_R4_4_unknown_machine_is_an_error_with_did_you_mean(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.machines.jonn = {}
roles.controller.machines.srv = {}
""",
        services={"probe": PROBE},
    )
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    [problem] = err.value.problems
    assert problem.kind == "unknown-machine"
    assert problem.path == "instances.a.roles.peer.machines.jonn"
    assert problem.hint is not None and "'jon'" in problem.hint


def test_R4_5_unknown_role_lists_the_services_roles(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peeer.machines.jon = {}
""",
        services={"probe": PROBE},
    )
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    [problem] = err.value.problems
    assert problem.kind == "unknown-role"
    assert 'uses the following roles:\n["peeer"]' in problem.message
    assert 'only defines roles:\n["controller","peer"]' in problem.message
    assert problem.hint is not None and "peer" in problem.hint


def test_R4_6_several_roles_per_machine(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.machines.srv = {}
roles.controller.machines.srv = {}
""",
        services={"probe": PROBE},
    )
    seen = probe_file(clan, "srv", "/probe/a/peer")
    assert seen["machine"] == {"name": "srv", "roles": ["controller", "peer"]}
    per_machine = probe_file(clan, "srv", "/probe/per-machine")
    assert per_machine["roles"] == ["controller", "peer"]
    assert per_machine["instances"] == {"a": {"controller": ["srv"], "peer": ["srv"]}}


def test_R4_7_empty_instance_is_valid(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
""",
        services={"probe": PROBE},
    )
    data = clan.resolved.to_json()
    assert data["members"] == {"a": {}}
    assert data["machines"]["jon"]["instances"] == {}
    assert clan.evaluator.config("jon").is_empty()


def test_R4_8_module_without_roles_is_an_error(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "empty", input = "self" }
""",
        services={"empty": "from pyclan.services import Service\nservice = Service('empty')\n"},
    )
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    assert "Role behavior of service 'empty' must be defined" in err.value.problems[0].message


def test_R5_1_tag_settings_apply_to_machines_carrying_the_tag(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.controller.machines.srv = {}
roles.peer.machines.jon.settings.items = ["m"]
roles.peer.machines.srv = {}
roles.peer.tags.laptop.settings.items = ["laptop"]
roles.peer.tags.desk.settings.items = ["desk"]
roles.peer.settings.items = ["r"]
""",
        services={"probe": PROBE},
    )
    roles = clan.resolved.to_json()["machines"]
    # jon: member through machines and tag laptop; sara through tags laptop and desk
    assert roles["jon"]["instances"]["a"]["roles"]["peer"]["settings"]["items"] == ["laptop", "m", "r"]
    assert roles["sara"]["instances"]["a"]["roles"]["peer"]["settings"]["items"] == ["laptop", "desk", "r"]
    assert roles["srv"]["instances"]["a"]["roles"]["peer"]["settings"]["items"] == ["r"]


def test_R7_1_per_instance_arguments_verified_example(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.instance_foo]
module = { name = "probe", input = "self" }
roles.peer.settings.timeout = "foo-peer"
roles.peer.machines.srv.settings.timeout = { _type = "override", priority = 50, content = "foo-peer-jon" }
roles.controller.machines.srv = {}
""",
        services={"probe": PROBE},
    )
    seen = probe_file(clan, "srv", "/probe/instance_foo/peer")
    assert seen["machine"] == {"name": "srv", "roles": ["controller", "peer"]}
    assert seen["settings"]["timeout"] == "foo-peer-jon"
    assert seen["roles"] == {"controller": ["srv"], "peer": ["srv"]}
    inst = clan.resolved.instances["instance_foo"]
    assert inst.roles["peer"].role_only().timeout == "foo-peer"  # type: ignore[attr-defined]


def test_R10_constraint_checks_ids_wording_and_order(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.machines.jon = {}
[instances.b]
module = { name = "probe", input = "self" }
roles.controller.machines.jon = {}
roles.controller.machines.sara = {}
""",
        services={"probe": PROBE},
    )
    checks = clan.resolved.to_json()["checks"]
    assert checks == [
        {
            "id": "probe-maxInstances",
            "message": "Service 'probe' allows at most 1 instance(s) but 2 are defined.",
            "severity": "error",
        },
        {
            "id": "probe-a-controller-minMachines",
            "message": "Role 'controller' of service 'probe' instance 'a' requires at least 1 machine(s) "
            "but 0 are assigned.",
            "severity": "error",
        },
        {
            "id": "probe-b-controller-maxMachines",
            "message": "Role 'controller' of service 'probe' instance 'b' allows at most 1 machine(s) "
            "but 2 are assigned.",
            "severity": "error",
        },
    ]


def test_R11_exports_are_visible_to_every_member(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.tags = ["laptop"]
roles.controller.machines.srv = {}
""",
        services={"probe": PROBE},
    )
    seen = probe_file(clan, "jon", "/probe/a/peer")
    assert seen["exports"] == ["probe:a:peer:jon", "probe:a:peer:sara"]
    assert clan.evaluator.exports()["probe:a:peer:sara"] == {"peer": {"name": "sara"}}


def test_R11_3_per_instance_exports_limited_to_own_scope(make_clan: MakeClan) -> None:
    bad = PROBE.replace(
        'return ctx.mk_exports({"peer": {"name": ctx.machine.name}})',
        'return {"probe:a:peer:someone-else": {"peer": {}}}',
    )
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.machines.jon = {}
roles.controller.machines.srv = {}
""",
        services={"probe": bad},
    )
    with pytest.raises(ClanError) as err:
        clan.evaluator.exports()
    assert "Export scope mismatch: incorrect machine name" in err.value.problems[0].message


def test_R2_2_unknown_module_hints(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module.name = "hello-wrld"
"""
    )
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    [problem] = err.value.problems
    assert problem.kind == "unknown-module"
    assert problem.path == "instances.a.module.name"
    assert "clan-core doesn't provide clan-module with name 'hello-wrld'" in problem.message
    assert problem.hint is not None and "'hello-world'" in problem.hint and 'module.input = "self"' in problem.hint


def test_R2_2_unknown_input_lists_inputs(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "x", input = "nixpkgs" }
"""
    )
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    [problem] = err.value.problems
    assert problem.kind == "unknown-input"
    assert "Flake doesn't provide input with name 'nixpkgs'" in problem.message
    assert "- self" in problem.message and "- clan-core" in problem.message


def test_R3_1_instances_grouped_by_input_and_name(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.controller.machines.srv = {}
[instances.b]
module.name = "hello-world"
[instances.c]
module = { name = "hello-world", input = "clan-core" }
""",
        services={"probe": PROBE},
    )
    assert sorted(clan.resolved.services()) == ["<clan-core>-hello-world", "clan-core-hello-world", "self-probe"]


def test_all_problems_reported_at_once(make_clan: MakeClan) -> None:
    clan = make_clan(
        MACHINES
        + """
[instances.a]
module = { name = "probe", input = "self" }
roles.peer.machines.ghost = {}
roles.peer.settings.timout = "x"
[instances.b]
module.name = "nonexistent"
""",
        services={"probe": PROBE},
    )
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    found = sorted((p.kind, p.path) for p in err.value.problems)
    assert found == [
        ("unknown-machine", "instances.a.roles.peer.machines.ghost"),
        ("unknown-module", "instances.b.module.name"),
        # the role has no members (ghost is none): its own settings are still checked
        ("unknown-setting", "instances.a.roles.peer.settings.timout"),
    ]


def test_machines_in_no_role_appear_with_empty_instances(make_clan: MakeClan) -> None:
    clan = make_clan(MACHINES)
    data = clan.resolved.to_json()
    assert data == {
        "machines": {
            "jon": {"tags": ["laptop", "all", "nixos"], "instances": {}},
            "sara": {"tags": ["laptop", "desk", "all", "nixos"], "instances": {}},
            "srv": {"tags": ["server", "all", "nixos"], "instances": {}},
        },
        "members": {},
        "checks": [],
        "warnings": [],
    }
