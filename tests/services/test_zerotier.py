"""zerotier: real identities (checked as zerotier-one checks them), network config, constraints, the hook."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyclan.clan import Clan, open_clan
from pyclan.errors import ClanError
from pyclan.services.library import _zerotier_identity as ztid
from pyclan.services.library import zerotier as zt
from pyclan.vars.api import decrypt_secret
from pyclan.vars.generate import generate
from pyclan.vars.keys import KEY_FILE_ENV, keygen

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

# ZeroTier's own self-test vectors (selftest.cpp): one identity that validates, the same with a wrong address.
KNOWN_GOOD = (
    "8e4df28b72:0:ac3d46abe0c21f3cfe7a6c8d6a85cfcffcb82fbd55af6a4d6350657c68200843fa2e16f9418bbd9702cae365f2af5f"
    "b4c420908b803a681d4daef6114d78a2d7:bd8dd6e4ce7022d2f812797a80c6ee8ad180dc4ebf301dec8b06d1be08832bddd63a2f1cfa7b2c"
    "504474c75bdc8898ba476ef92e8e2d0509f8441985171ff16e"
)
KNOWN_BAD = "9" + KNOWN_GOOD[1:]
SALSA_KEY = bytes.fromhex("0f62b5085bae0154a7fa4da0f34699ec3f92e5388bde3184d72a7dd02376c91c")
SALSA_IV = bytes.fromhex("288ff65dc42b92f9")
SALSA_STREAM = bytes.fromhex(
    "5e5e71f90199340304abb22a37b6625bf883fb89ce3b21f54a10b81066ef87da"
    "30b77699aa7379da595c77dd59542da208e5954f89e40eb7aa80a84a6176663f"
)

SEED = """
[meta]
name = "ztclan"

[machines.my-machine-name]
[machines.some-server-name]

[instances.my-vpn]
module.name = "zerotier"
roles.peer.machines.my-machine-name = {}
roles.peer.settings.ipRanges = ["all"]
roles.controller.machines.some-server-name.settings.dynamicIp.enable = true
"""

# a second instance on the same two machines: roles swapped, a moon, explicit ranges, an outside member
LAB = """
[instances.lab]
module.name = "zerotier"
roles.controller.machines.my-machine-name.settings.allowedIps = ["fd00:1111:2222:3333:4499:93ab:cdef:0123"]
roles.peer.machines.some-server-name.settings.ipRanges = ["10.147.17.0/24", "fd42::/64"]
roles.moon.machines.some-server-name.settings.stableEndpoints = ["192.0.2.7/9993"]
"""


def test_salsa20_matches_zerotiers_test_vector() -> None:
    assert ztid.salsa20_stream(SALSA_KEY, SALSA_IV, 64, use_libsodium=False) == SALSA_STREAM
    assert ztid.salsa20_stream(SALSA_KEY, SALSA_IV, 64) == SALSA_STREAM
    # many blocks: the vectorised Python stream and the default one (libsodium when installed) agree
    long = ztid.salsa20_stream(SALSA_KEY, SALSA_IV, 64 * 300, use_libsodium=False)
    assert long[:64] == SALSA_STREAM and long == ztid.salsa20_stream(SALSA_KEY, SALSA_IV, 64 * 300)


def test_known_identity_vectors_validate_as_zerotier_one_would() -> None:
    good = ztid.ZeroTierIdentity.parse(KNOWN_GOOD)
    assert good.address == "8e4df28b72" and good.keys_match()
    assert good.secret_string() == KNOWN_GOOD and good.public_string() == KNOWN_GOOD.rsplit(":", 1)[0]
    assert good.locally_validate() and good.locally_validate(use_libsodium=False)
    assert not ztid.ZeroTierIdentity.parse(KNOWN_BAD).locally_validate()
    with pytest.raises(ValueError):
        ztid.ZeroTierIdentity.parse("8e4df28b72:1:abcd")


def test_rfc4193_address_layout() -> None:
    ip = ztid.rfc4193_address("8056c2e21c000001", "efcc1b0947")
    assert ip == ipaddress.IPv6Address("fd80:56c2:e21c:0:199:93ef:cc1b:947")
    assert ztid.node_id_of(str(ip)) == "efcc1b0947" and ztid.node_id_of("EFCC1B0947") == "efcc1b0947"


def test_seed_example_resolves_exactly_as_written(make_clan: MakeClan) -> None:
    resolved = make_clan(SEED).resolved.to_json()
    assert resolved["members"] == {"my-vpn": {"controller": ["some-server-name"], "peer": ["my-machine-name"]}}
    assert resolved["checks"] == []
    peer = resolved["machines"]["my-machine-name"]["instances"]["my-vpn"]
    assert (peer["service"], peer["input"], list(peer["roles"])) == ("zerotier", None, ["peer"])
    assert peer["roles"]["peer"]["settings"]["ipRanges"] == ["all"]
    # which defaults the resolved settings list is the engine's business (R5.3.9); the defined ones are there
    controller = resolved["machines"]["some-server-name"]["instances"]["my-vpn"]["roles"]
    assert list(controller) == ["controller"] and controller["controller"]["settings"]["dynamicIp"] == {"enable": True}


@pytest.mark.parametrize(
    ("controllers", "expected"),
    [
        (
            [],
            [
                {
                    "id": "zerotier-my-vpn-controller-minMachines",
                    "message": "Role 'controller' of service 'zerotier' instance 'my-vpn' requires at least 1 "
                    "machine(s) but 0 are assigned.",
                    "severity": "error",
                }
            ],
        ),
        (
            ["some-server-name", "other-server"],
            [
                {
                    "id": "zerotier-my-vpn-controller-maxMachines",
                    "message": "Role 'controller' of service 'zerotier' instance 'my-vpn' allows at most 1 "
                    "machine(s) but 2 are assigned.",
                    "severity": "error",
                }
            ],
        ),
    ],
)
def test_controller_constraints_use_clans_ids_and_wording(
    make_clan: MakeClan, controllers: list[str], expected: list[dict[str, str]]
) -> None:
    toml = SEED.replace("roles.controller.machines.some-server-name.settings.dynamicIp.enable = true\n", "")
    toml += "[machines.other-server]\n" + "".join(
        f"[instances.my-vpn.roles.controller.machines.{m}]\n" for m in controllers
    )
    assert make_clan(toml).resolved.to_json()["checks"] == expected


def test_at_most_four_moons(make_clan: MakeClan) -> None:
    moons = [f"moon{i}" for i in range(5)]
    toml = SEED + "".join(f"[machines.{m}]\n" for m in moons)
    toml += "".join(
        f'[instances.my-vpn.roles.moon.machines.{m}.settings]\nstableEndpoints = ["192.0.2.{i}"]\n'
        for i, m in enumerate(moons)
    )
    checks = make_clan(toml).resolved.checks
    assert [c.id for c in checks] == ["zerotier-my-vpn-moon-maxMachines"]
    assert checks[0].message.endswith("allows at most 4 machine(s) but 5 are assigned.")


def test_bad_settings_are_reported_with_their_path(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        make_clan(SEED.replace('["all"]', '["everything"]')).resolved  # noqa: B018 - resolving is the test
    problem = err.value.problems[0]
    assert problem.path.startswith("instances.my-vpn.roles.peer")
    assert "'everything' is neither \"all\" nor an IP range" in problem.message
    with pytest.raises(ClanError) as err:
        make_clan(SEED + 'roles.controller.settings.allowedIds = ["not-a-node"]\n').resolved  # noqa: B018
    assert any(p.path.endswith("settings.allowedIds") and "not a ZeroTier node id" in p.message
               for p in err.value.problems)


def test_clans_options_have_clans_defaults(make_clan: MakeClan) -> None:
    """A moon without `stableEndpoints` is valid (Clan's empty value), peers/controllers take Clan's options."""
    clan = make_clan(SEED + "roles.moon.machines.my-machine-name = {}\n"
                     'roles.peer.settings.orbitMoons = ["deadbeef00"]\n'
                     'roles.controller.settings = { public = true, allowedIds = ["abc1234567"] }\n')
    resolved = clan.resolved.to_json()["machines"]
    assert resolved["my-machine-name"]["instances"]["my-vpn"]["roles"]["peer"]["settings"]["orbitMoons"] == [
        "deadbeef00"]
    gens = clan.evaluator.generators()
    assert set(gens["my-machine-name"]) == {
        "zerotier-identity-my-machine-name", "zerotier-network-my-vpn", "zerotier-ip-my-machine-name-my-vpn"}
    network = gens["some-server-name"]["zerotier-network-my-vpn"].generator
    assert network.share and network.dependencies == ("zerotier-identity-some-server-name",)
    assert gens["my-machine-name"]["zerotier-network-my-vpn"].generator == network  # declared by every member


# -- one clan with real vars for the rest (identities take seconds each: made once) -------------------------


@pytest.fixture(scope="module")
def clan_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("zerotier")
    clan = root / "clan"
    clan.mkdir()
    (clan / "clan.toml").write_text(SEED + LAB)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_FILE_ENV, str(root / "admin.key"))
        keygen(clan, "tester")
        report = generate(open_clan(clan, {}))
        assert sorted(report.generated) == sorted([
            "shared/zerotier-identity-my-machine-name",
            "shared/zerotier-identity-some-server-name",
            "shared/zerotier-network-lab",
            "shared/zerotier-network-my-vpn",
            "shared/zerotier-ip-my-machine-name-lab",
            "shared/zerotier-ip-my-machine-name-my-vpn",
            "shared/zerotier-ip-some-server-name-lab",
            "shared/zerotier-ip-some-server-name-my-vpn",
        ])
        yield clan


@pytest.fixture
def clan(clan_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Clan:
    monkeypatch.setenv(KEY_FILE_ENV, str(clan_dir.parent / "admin.key"))
    return open_clan(clan_dir, {})


def _shared(clan: Clan, generator: str, file: str) -> str:
    return (clan.dir / f"vars/shared/{generator}/{file}/value").read_text().strip()


def _nwid(clan: Clan, instance: str) -> str:
    return _shared(clan, f"zerotier-network-{instance}", "network-id")


def _secret(clan: Clan, machine: str) -> bytes:
    return decrypt_secret(clan, machine, f"zerotier-identity-{machine}", "identity-secret")


def _node(clan: Clan, machine: str) -> str:
    return ztid.ZeroTierIdentity.parse(_secret(clan, machine).decode()).address


def test_generated_identities_are_valid_zerotier_identities(clan: Clan) -> None:
    for machine in ("my-machine-name", "some-server-name"):
        identity = ztid.ZeroTierIdentity.parse(_secret(clan, machine).decode())
        assert identity.keys_match() and identity.locally_validate()


def test_network_ids_belong_to_their_controllers_and_ips_to_their_members(clan: Clan) -> None:
    for instance, controller in (("my-vpn", "some-server-name"), ("lab", "my-machine-name")):
        nwid = _nwid(clan, instance)
        assert len(nwid) == 16 and nwid.startswith(_node(clan, controller)) and not nwid.endswith("000000")
        for machine in ("my-machine-name", "some-server-name"):
            ip = _shared(clan, f"zerotier-ip-{machine}-{instance}", "ip")
            assert ip == ztid.rfc4193_address(nwid, _node(clan, machine)).compressed


def test_controller_renders_network_and_authorises_every_member(clan: Clan) -> None:
    nwid = _nwid(clan, "my-vpn")
    files = clan.evaluator.config("some-server-name").files
    network = json.loads(files[f"/etc/zerotier/pyclan/controller/{nwid}.json"].content)
    default_range = zt.default_ipv4_range("my-vpn")
    assert default_range.subnet_of(ipaddress.IPv4Network("172.16.0.0/12")) and default_range.prefixlen == 24
    assert network["id"] == network["nwid"] == nwid and network["name"] == "my-vpn" and network["private"] is True
    assert network["v4AssignMode"] == {"zt": True}  # dynamicIp.enable
    assert network["v6AssignMode"] == {"6plane": False, "rfc4193": True, "zt": False}
    assert network["routes"] == [{"target": str(default_range), "via": None}]  # ipRanges = ["all"]
    assert network["ipAssignmentPools"] == [
        {"ipRangeStart": str(default_range[1]), "ipRangeEnd": str(default_range[-2])}
    ]
    members = {p.rsplit("/", 1)[1][:-5] for p in files if p.startswith(f"/etc/zerotier/pyclan/controller/{nwid}/")}
    assert members == {_node(clan, "some-server-name"), _node(clan, "my-machine-name")}
    for node in members:
        member = json.loads(files[f"/etc/zerotier/pyclan/controller/{nwid}/member/{node}.json"].content)
        assert member["authorized"] is True and member["id"] == node and member["nwid"] == nwid


def test_second_instance_ranges_moon_and_outside_member(clan: Clan) -> None:
    nwid = _nwid(clan, "lab")
    cfg = clan.evaluator.config("my-machine-name")
    network = json.loads(cfg.files[f"/etc/zerotier/pyclan/controller/{nwid}.json"].content)
    assert network["v4AssignMode"] == {"zt": False}
    assert [r["target"] for r in network["routes"]] == ["10.147.17.0/24", "fd42::/64"]
    assert network["ipAssignmentPools"][0] == {"ipRangeStart": "10.147.17.1", "ipRangeEnd": "10.147.17.254"}
    assert f"/etc/zerotier/pyclan/controller/{nwid}/member/abcdef0123.json" in cfg.files  # allowedIps
    server_node = _node(clan, "some-server-name")
    assert f"/etc/zerotier/pyclan/orbit/{server_node}" in cfg.files  # the moon of `lab`
    server = clan.evaluator.config("some-server-name").files
    assert json.loads(server["/etc/zerotier/pyclan/moon/lab.json"].content) == ["192.0.2.7/9993"]


def test_members_join_their_networks_with_their_addresses(clan: Clan) -> None:
    vpn, lab = _nwid(clan, "my-vpn"), _nwid(clan, "lab")
    for machine in ("my-machine-name", "some-server-name"):
        cfg = clan.evaluator.config(machine)
        joined = {p.rsplit("/", 1)[1]: f.content for p, f in cfg.files.items() if "/join/" in p}
        assert set(joined) == {vpn, lab}
        node = _node(clan, machine)
        assert f"ip={ztid.rfc4193_address(vpn, node).compressed}" in joined[vpn]
        assert cfg.hooks["zerotier"].script == "sh /etc/zerotier/pyclan/apply.sh"
        assert set(cfg.secrets) == {f"/var/lib/pyclan/secrets/zerotier-identity-{machine}/identity-secret"}
        assert cfg.packages == []  # Debian has no zerotier-one package


def test_exports_give_each_members_zerotier_address(clan: Clan) -> None:
    exports = clan.evaluator.exports()
    nwid = _nwid(clan, "my-vpn")
    assert exports["zerotier:my-vpn::"]["networking"]["priority"] == 900
    peer = exports["zerotier:my-vpn:peer:my-machine-name"]["peer"]
    assert peer == {"hosts": [{"plain": ztid.rfc4193_address(nwid, _node(clan, "my-machine-name")).compressed}]}


def _files(cfg: Any) -> dict[str, bytes]:
    return {path: spec.content.encode() for path, spec in cfg.files.items()}


def test_activation_hook_installs_into_zerotier_home_idempotently(clan: Clan, isolated: Isolated) -> None:
    cfg = clan.evaluator.config("my-machine-name")
    secret_path = "/var/lib/pyclan/secrets/zerotier-identity-my-machine-name/identity-secret"
    host = _files(cfg) | {secret_path: _secret(clan, "my-machine-name")}
    lab, vpn = _nwid(clan, "lab"), _nwid(clan, "my-vpn")
    stale = "/var/lib/zerotier-one/controller.d/network"
    script = f"""
{cfg.hooks["zerotier"].script}
find /var/lib/zerotier-one -type f | sort
echo ---
stat -c '%a %n' /var/lib/zerotier-one/identity.secret
cmp /var/lib/zerotier-one/identity.secret {secret_path}
cut -d: -f1-3 {secret_path} | cmp - /var/lib/zerotier-one/identity.public
echo '{{"changed": "by zerotier-one"}}' > {stale}/{lab}.json
: > /var/lib/zerotier-one/networks.d/0000000000000001.conf
{cfg.hooks["zerotier"].script}
echo ---
cat {stale}/{lab}.json
ls /var/lib/zerotier-one/networks.d
"""
    done = isolated(script, files=host)
    listing, perms, after = done.stdout.split("---\n")
    node = _node(clan, "my-machine-name")
    assert listing.split() == sorted(
        [
            f"{stale}/{lab}.json",
            f"{stale}/{lab}/member/abcdef0123.json",
            f"{stale}/{lab}/member/{_node(clan, 'some-server-name')}.json",
            f"{stale}/{lab}/member/{node}.json",
            "/var/lib/zerotier-one/identity.public",
            "/var/lib/zerotier-one/identity.secret",
            f"/var/lib/zerotier-one/networks.d/{lab}.conf",
            f"/var/lib/zerotier-one/networks.d/{vpn}.conf",
        ]
    )
    assert perms.strip() == "600 /var/lib/zerotier-one/identity.secret"
    # the daemon's own rewrite of its database survives an unchanged rendering; undeclared networks are left
    assert '"changed": "by zerotier-one"' in after
    assert after.split()[-2:] == sorted([f"{lab}.conf", f"{vpn}.conf"])
    assert "zerotier-one is not installed" in done.stderr


def test_packaged_apply_script_is_filled_in_and_parses_as_posix_sh(tmp_path: Path) -> None:
    script = zt.apply_script("/var/lib/pyclan/secrets/it's here/identity-secret")
    assert re.findall(r"@[A-Z_]+@", script) == []  # every placeholder of _zerotier_apply.sh is filled in
    assert "\nSTATE=/var/lib/pyclan/hook-state/zerotier\n" in script
    assert "put '/var/lib/pyclan/secrets/it'\"'\"'s here/identity-secret' identity.secret 0600" in script
    path = tmp_path / "apply.sh"
    path.write_text(script)
    assert subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True).returncode == 0
