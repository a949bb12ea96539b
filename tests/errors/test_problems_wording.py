"""All problems at once, in Clan's words (issue 8: R1.8a/c, R2.2, R4.3, R4.4, R4.5, R5.9, R6.2)."""

from __future__ import annotations

import json

import pytest
from clans import MakeClan

from pyclan.clan import Clan
from pyclan.errors import ClanError, Problem
from pyclan.services.registry import checked_service
from pyclan.services.service import Constraints, NoSettings, RoleConstraint, Service

SERVICE = """
from pydantic import BaseModel
from pyclan.services import InstanceContext, MachineConfig, Service

service = Service("svc")

class Peer(BaseModel):
    keys: dict[str, str] = {}
    port: int = 1

@service.role("peer", interface=Peer, description="peer")
def peer(ctx: InstanceContext[Peer]) -> MachineConfig:
    return MachineConfig()

@service.role("server", interface=Peer, description="server")
def server(ctx: InstanceContext[Peer]) -> MachineConfig:
    return MachineConfig()
"""

META = '[meta]\nname = "t"\n[machines.jon]\ntags = ["b"]\n'


def problems_of(clan: Clan) -> list[Problem]:
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    return err.value.problems


def test_R4_4_unknown_machine_reported_under_an_unknown_module(make_clan: MakeClan) -> None:
    clan = make_clan(META + '[instances.x]\nmodule.name = "nonexistent"\nroles.peer.machines.ghost = {}\n')
    found = sorted((p.kind, p.path) for p in problems_of(clan))
    assert found == [
        ("unknown-machine", "instances.x.roles.peer.machines.ghost"),
        ("unknown-module", "instances.x.module.name"),
    ]


def test_R4_4_unknown_machine_reported_under_an_undefined_role(make_clan: MakeClan) -> None:
    clan = make_clan(
        META + '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.nope.machines.ghost = {}\n',
        services={"svc": SERVICE},
    )
    found = sorted((p.kind, p.path) for p in problems_of(clan))
    assert found == [
        ("unknown-machine", "instances.x.roles.nope.machines.ghost"),
        ("unknown-role", "instances.x.roles.nope"),
    ]


def test_R4_5_role_lists_are_json_without_spaces(make_clan: MakeClan) -> None:
    clan = make_clan(
        META + '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.b.machines.jon = {}\n'
        "roles.a.machines.jon = {}\n",
        services={"svc": SERVICE},
    )
    [problem] = problems_of(clan)
    assert problem.message == (
        "Instance: 'instances.x' uses the following roles:\n"
        '["a","b"]\n\nBut the clan-service module \'svc\' only defines roles:\n["peer","server"]\n\n'
        "Error context: self-svc"
    )


def test_R4_3_unknown_tag_lists_the_tags_machines_carry(make_clan: MakeClan) -> None:
    clan = make_clan(
        META + '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.peer.tags = ["nope"]\n',
        services={"svc": SERVICE},
    )
    assert clan.resolved.warnings == [
        "Service instance 'x': - peer tags: no machine with tag 'nope' found.\n"
        'Available tags: ["b","all","nixos"]'  # Clan's own output for this inventory
    ]


def test_R1_8a_settings_not_an_object_is_settings_type(make_clan: MakeClan) -> None:
    clan_toml = META + '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.peer.settings = "x"\n'
    with pytest.raises(ClanError) as err:
        make_clan(clan_toml, services={"svc": SERVICE})
    [problem] = err.value.problems
    assert (problem.kind, problem.path) == ("settings-type", "instances.x.roles.peer.settings")
    assert "is not of type `deferred custom module. Must be JSON serializable.'" in problem.message


def test_R1_8c_settings_with_imports_is_settings_type(make_clan: MakeClan) -> None:
    inventory = {
        "meta": {"name": "t"},
        "machines": {"jon": {}},
        "instances": {"x": {"roles": {"peer": {"machines": {"jon": {"settings": {"imports": []}}}}}}},
    }
    with pytest.raises(ClanError) as err:
        make_clan(inventory_json=json.dumps(inventory))
    [problem] = err.value.problems
    assert (problem.kind, problem.path) == ("settings-type", "instances.x.roles.peer.machines.jon.settings")
    assert "uniqueDeferredSerializableModule doesn't allow nested imports" in problem.message


def test_machine_class_error_reads_like_clans_enum_error(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        make_clan('[meta]\nname = "t"\n[machines.jon]\nmachineClass = "bsd"\n')
    [problem] = err.value.problems
    assert problem.message == (
        "A definition for option `inventory.machines.jon.machineClass' is not of type "
        '`one of "nixos", "darwin"\'. Definition values:\n- In `clan.toml\': "bsd"'
    )


@pytest.mark.parametrize(
    ("constraints", "option", "description"),
    [
        (Constraints(max_instances=0), "manifest.constraints.maxInstances", "null or (positive integer, meaning >0)"),
        (
            Constraints(roles={"peer": RoleConstraint(max_machines=0)}),
            "manifest.constraints.roles.peer.maxMachines",
            "null or (positive integer, meaning >0)",
        ),
        (
            Constraints(roles={"peer": RoleConstraint(min_machines=-1)}),
            "manifest.constraints.roles.peer.minMachines",
            "null or (unsigned integer, meaning >=0)",
        ),
    ],
)
def test_R6_2_constraints_types(constraints: Constraints, option: str, description: str) -> None:
    service = Service("svc", constraints=constraints)
    service.role("peer", interface=NoSettings)(lambda ctx: None)
    with pytest.raises(ClanError) as err:
        checked_service(service, "services/svc.py", "a Service")
    [problem] = err.value.problems
    assert (problem.kind, problem.path) == ("service-error", option)
    assert f"is not of type `{description}'" in problem.message
    ok = Service("svc", constraints=Constraints(max_instances=1, roles={"peer": RoleConstraint(0, 1)}))
    ok.role("peer", interface=NoSettings)(lambda ctx: None)
    assert checked_service(ok, "services/svc.py", "a Service") is ok


def test_R2_2_input_without_modules_does_not_provide_the_module(make_clan: MakeClan, tmp_path: object) -> None:
    from pathlib import Path

    empty = Path(str(tmp_path)) / "empty-input"
    (empty / "services").mkdir(parents=True)
    clan = make_clan(
        META + f'[inputs.lib]\npath = "{empty}"\n[instances.x]\nmodule = {{ name = "m", input = "lib" }}\n'
    )
    [problem] = problems_of(clan)
    assert "flake input 'lib' doesn't provide clan-module with name 'm'" in problem.message


def test_R5_9_role_settings_of_a_role_without_members_are_checked(make_clan: MakeClan) -> None:
    clan = make_clan(
        META + '[instances.x]\nmodule = { name = "svc", input = "self" }\n'
        'roles.server.settings.keys = ["not", "an", "attrset"]\nroles.server.settings.prot = 2\n'
        "roles.peer.machines.jon = {}\n",
        services={"svc": SERVICE},
    )
    found = sorted((p.kind, p.path) for p in problems_of(clan))
    assert found == [
        ("settings-type", "instances.x.roles.server.settings.keys"),
        ("unknown-setting", "instances.x.roles.server.settings.prot"),
    ]


def test_R5_9_memberless_role_may_leave_required_options_to_its_future_members(make_clan: MakeClan) -> None:
    required = SERVICE.replace("port: int = 1", "port: int")
    clan = make_clan(
        META + '[instances.x]\nmodule = { name = "svc", input = "self" }\nroles.server.settings.keys.a = "k"\n',
        services={"svc": required},
    )
    assert clan.resolved.instances["x"].roles["server"].members == []
