"""internet: per-machine addresses exported as `peer`, read back with machine_host()."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library.internet import machine_host, machine_target, machine_targets

MakeClan = Callable[..., Clan]

CLAN = """
[meta]
name = "net"
[machines.server1]
[machines.server2]
[machines.laptop]
[instances.internet]
roles.default.machines.server1.settings.host = "server1.example.com"
[instances.internet.roles.default.machines.server2.settings]
host = "192.168.1.100"
port = 45621
user = "admin"
jumphosts = ["bastion.example.com"]
"""


def test_exports_peer_and_networking_priority(make_clan: MakeClan) -> None:
    exports = make_clan(CLAN).evaluator.exports()
    assert exports["internet:internet:default:server1"]["peer"] == {
        "hosts": [{"plain": "server1.example.com"}], "user": None, "port": 22, "SSHOptions": [],
    }
    assert exports["internet:internet:default:server2"]["peer"]["SSHOptions"] == ["-J bastion.example.com"]
    assert exports["internet:internet::"]["networking"]["priority"] == 2000


def test_machine_host_reads_the_export_back(make_clan: MakeClan) -> None:
    exports = make_clan(CLAN).evaluator.exports()
    assert machine_host(exports, "server1") == "server1.example.com"
    assert machine_host(exports, "laptop") is None
    target = machine_target(exports, "server2")
    assert target is not None
    assert (target.host, target.user, target.port, target.jumphosts) == (
        "192.168.1.100", "admin", 45621, ("bastion.example.com",)
    )


def test_several_instances_are_ordered_by_priority_then_name(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN + """
[instances.a-lan]
module.name = "internet"
roles.default.machines.server1.settings.host = "10.0.0.1"
""")
    exports = clan.evaluator.exports()
    assert [t.host for t in machine_targets(exports, "server1")] == ["10.0.0.1", "server1.example.com"]
    # a lower networking priority (e.g. set by another export) moves an instance back
    exports = dict(exports)
    exports["internet:a-lan::"] = {"networking": {"priority": 100}}
    assert machine_host(exports, "server1") == "server1.example.com"


def test_host_defaults_to_empty_which_gives_no_address(make_clan: MakeClan) -> None:
    """Clan: `host` defaults to "" — the member is valid, but exports no address to connect to."""
    clan = make_clan(CLAN + "[instances.internet.roles.default.machines.laptop]\n")
    assert clan.evaluator.exports()["internet:internet:default:laptop"]["peer"]["hosts"] == [{"plain": ""}]
    assert machine_host(clan.evaluator.exports(), "laptop") is None
    with pytest.raises(ClanError) as err:
        _ = make_clan(CLAN + '[instances.internet.roles.default.machines.laptop.settings]\nhost = "two words"\n',
                      name="bad").resolved
    assert err.value.problems[0].path == "instances.internet.roles.default.machines.laptop.settings.host"


def test_nothing_is_installed(make_clan: MakeClan) -> None:
    assert make_clan(CLAN).evaluator.config("server1").is_empty()
