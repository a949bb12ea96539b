"""Clan services that cannot run on Debian: a clear "not available" error, not "unknown module"."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library._unavailable import UNAVAILABLE

MakeClan = Callable[..., Clan]

NOT_ON_DEBIAN = [
    "coredns", "data-mesher", "dm-dns", "garage", "importer", "installer", "matrix-synapse", "mycelium",
    "ncps", "p2p-ssh-iroh", "trusted-nix-caches",
]  # fmt: skip


def _clan_with(module: str, input_line: str = "") -> str:
    return f"""
[meta]
name = "gap"
[machines.m1]
[instances.gap]
module.name = "{module}"
{input_line}
roles.default.machines.m1 = {{}}
"""


def test_the_table_names_exactly_the_known_gaps() -> None:
    assert sorted(UNAVAILABLE) == NOT_ON_DEBIAN
    assert all(reason and "\n" not in reason for reason in UNAVAILABLE.values())


@pytest.mark.parametrize("name", NOT_ON_DEBIAN)
def test_an_unavailable_service_is_a_known_gap_at_module_name(make_clan: MakeClan, name: str) -> None:
    with pytest.raises(ClanError) as err:
        _ = make_clan(_clan_with(name), name=name).resolved
    [problem] = err.value.problems
    assert problem.kind == "unknown-module"
    assert problem.path == "instances.gap.module.name"
    assert problem.message == f"Clan service '{name}' is not available in pyclan on Debian: {UNAVAILABLE[name]}"
    assert problem.file is not None and problem.file.endswith("clan.toml")


def test_input_clan_core_is_the_bundled_library_too(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        _ = make_clan(_clan_with("mycelium", 'module.input = "clan-core"')).resolved
    assert "is not available in pyclan on Debian" in err.value.problems[0].message


def test_the_clans_own_services_folder_may_provide_one(make_clan: MakeClan) -> None:
    own = """
from pyclan.services import MachineConfig, Service
service = Service("garage")
@service.role("default")
def default(ctx):
    return MachineConfig().file("/etc/garage.toml", "# mine\\n")
"""
    clan = make_clan(_clan_with("garage", 'module.input = "self"'), services={"garage": own})
    assert clan.evaluator.config("m1").files["/etc/garage.toml"].content == "# mine\n"


def test_a_typo_is_still_an_unknown_module(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        _ = make_clan(_clan_with("mycelum")).resolved
    assert "doesn't provide clan-module with name 'mycelum'" in err.value.problems[0].message


def test_pyclan_check_prints_the_gap_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "clan.toml").write_text(_clan_with("matrix-synapse"))
    proc = subprocess.run(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(tmp_path), "check"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    assert "instances.gap.module.name: Clan service 'matrix-synapse' is not available in pyclan on Debian" in (
        proc.stdout + proc.stderr
    )
    assert "Traceback" not in proc.stderr


# clan-core's clanServices/: 30 services and coredns (moved out of clan-core, a stub that says so)
CLAN_SERVICES = [
    "admin", "borgbackup", "certificates", "coredns", "data-mesher", "dm-dns", "dyndns", "emergency-access",
    "garage", "hello-world", "importer", "installer", "internet", "kde", "localbackup", "matrix-synapse",
    "monitoring", "mycelium", "ncps", "p2p-ssh-iroh", "packages", "pki", "sshd", "syncthing", "tor",
    "trusted-nix-caches", "users", "wifi", "wireguard", "yggdrasil", "zerotier",
]  # fmt: skip


def test_readmes_table_lists_every_clan_service_with_its_real_status() -> None:
    from pyclan.services.registry import ServiceRegistry

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### Clan's services in pyclan", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    assert sorted(rows) == sorted(CLAN_SERVICES) and len(rows) == 31
    bundled = set(ServiceRegistry.for_clan(None).providers[None].names())
    for name, status in rows.items():
        if status.startswith("bundled"):
            assert name in bundled, name
        elif status == "not on Debian":
            assert name in UNAVAILABLE, name
        else:
            assert status == "not yet" and name not in bundled and name not in UNAVAILABLE, (name, status)
