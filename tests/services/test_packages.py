"""packages: apt package lists from role, tag and machine settings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pyclan.clan import Clan
from pyclan.errors import ClanError

MakeClan = Callable[..., Clan]

CLAN = """
[meta]
name = "pk"
[machines.web]
tags = ["server"]
[machines.laptop]
[instances.packages]
roles.default.tags.all.settings.packages = ["htop"]
roles.default.tags.server.settings.packages = ["nginx"]
roles.default.machines.web.settings.packages = ["tree"]
"""


def test_lists_concatenate_and_become_apt_packages(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN)
    settings = clan.resolved.to_json()["machines"]["web"]["instances"]["packages"]["roles"]["default"]["settings"]
    # R5.3.3: tags in reverse name order, then machine
    assert settings["packages"] == ["nginx", "htop", "tree"]
    assert clan.evaluator.config("web").packages == ["htop", "nginx", "tree"]
    assert clan.evaluator.config("laptop").packages == ["htop"]


def test_two_instances_add_up(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN + """
[instances.dev-tools]
module.name = "packages"
roles.default.machines.laptop.settings.packages = ["git", "htop"]
""")
    assert clan.evaluator.config("laptop").packages == ["git", "htop"]


def test_a_package_name_apt_cannot_install_is_an_error(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN.replace('["tree"]', '["Tree Viewer"]'))
    with pytest.raises(ClanError) as err:
        _ = clan.resolved
    problem = err.value.problems[0]
    assert problem.kind == "settings-type"
    assert problem.path.startswith("instances.packages.roles.default.machines.web.settings.packages")
    assert "Tree Viewer" in problem.message
