"""yggdrasil: keys and addresses that yggdrasil agrees with, peers from other services' exports, the filter."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogue_support import check_and_build, example_clan

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library.yggdrasil import FILTER, HOSTS_BLOCK, KEY_PLACEHOLDER, TEMPLATE, yggdrasil_keypair

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

# Clan's "complex usage" example, without mycelium (not available on Debian)
CLAN = """
[meta]
name = "ygg"
domain = "ccc"
[machines.peer1]
[machines.peer2]
[machines.peer3]
[instances.yggdrasil]
roles.default.tags = ["all"]
roles.default.machines.peer3.settings.extraYggdrasilIPs = ["324:71e:281a:9ed3::cafe"]
[instances.internet]
roles.default.machines.peer1.settings.host = "85.139.10.1"
roles.default.machines.peer2.settings.host = "2001:db8::2"
[instances.tor]
roles.client.tags = ["all"]
roles.server.machines.peer3 = {}
roles.server.settings.secretHostname = false
roles.server.settings.portMapping = [{ port = 6443, target.port = 6443 }, { port = 6446, target.port = 6446 }]
"""


def _yggdrasil(config: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["yggdrasil", "-useconf", *args], input=config, capture_output=True, text=True, check=False)


def test_clans_readme_example_checks_and_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = check_and_build(example_clan("yggdrasil", tmp_path, monkeypatch))
    assert built.check.checks == []
    for machine in ("peer1", "peer2"):
        gen = built.generations[machine]
        assert {"yggdrasil", "nftables"} <= set(gen.manifest.packages)
        assert {TEMPLATE, FILTER, HOSTS_BLOCK} <= set(gen.manifest.files)
        assert "/var/lib/pyclan/secrets/yggdrasil/privateKey" in gen.manifest.secrets
        config = json.loads(gen.objects[gen.manifest.files[TEMPLATE].sha256])
        assert len(config["AllowedPublicKeys"]) == 2 and config["Peers"] == []  # no other network exports peers
        assert config["PrivateKey"] == KEY_PLACEHOLDER  # the secret is filled in on the host


def test_addresses_are_the_ones_yggdrasil_derives() -> None:
    for _ in range(20):
        private, public, address = yggdrasil_keypair()
        assert _yggdrasil(json.dumps({"PrivateKey": private}), "-address").stdout.strip() == address
        assert _yggdrasil(json.dumps({"PrivateKey": private}), "-subnet").stdout.strip().startswith("3")
        assert private.endswith(public) and address.startswith("2")


def test_peers_come_from_other_services_exports_for_the_other_members(
    make_clan: MakeClan, generate_vars: Callable[..., Any]
) -> None:
    made = generate_vars(make_clan(CLAN))
    clan = make_clan(CLAN)
    onion = made.public[("peer3", "tor_tor", "hostname")].decode().strip()
    config = json.loads(clan.evaluator.config("peer1").files[TEMPLATE].content)
    assert config["Peers"] == [
        "tcp://[2001:db8::2]:6443", "tls://[2001:db8::2]:6446",  # peer2's internet address
        f"socks://127.0.0.1:9050/{onion}:6443",  # peer3's public onion hostname, through Tor
    ]
    assert config["Listen"] == ["tcp://[::]:6443", "tls://[::]:6446"]
    assert (config["IfName"], config["NodeInfoPrivacy"]) == ("ygg", True)
    keys = sorted(made.public[(m, "yggdrasil", "publicKey")].decode() for m in ("peer1", "peer2", "peer3"))
    assert sorted(config["AllowedPublicKeys"]) == keys
    hosts = clan.evaluator.config("peer1").files[HOSTS_BLOCK].content.splitlines()
    assert hosts[1:-1] == [f"{made.public[(m, 'yggdrasil', 'address')].decode()} {m}.ccc"
                           for m in ("peer1", "peer2", "peer3")]
    exports = clan.evaluator.exports()
    assert exports["yggdrasil:yggdrasil::"]["networking"]["priority"] == 2000
    assert exports["yggdrasil:yggdrasil:default:peer2"]["peer"] == {
        "hosts": [{"plain": made.public[("peer2", "yggdrasil", "address")].decode()}]
    }


def test_yggdrasil_accepts_the_config_with_the_key_filled_in(
    make_clan: MakeClan, generate_vars: Callable[..., Any]
) -> None:
    made = generate_vars(make_clan(CLAN))
    template = make_clan(CLAN).evaluator.config("peer2").files[TEMPLATE].content
    key = made.secret("peer2", "yggdrasil", "privateKey").decode().strip()
    done = _yggdrasil(template.replace(KEY_PLACEHOLDER, key), "-address")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == made.public[("peer2", "yggdrasil", "address")].decode()


def test_the_nftables_filter_lets_only_clan_members_through(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated
) -> None:
    made = generate_vars(make_clan(CLAN))
    rules = make_clan(CLAN).evaluator.config("peer3").files[FILTER].content
    for m in ("peer1", "peer2", "peer3"):
        assert made.public[(m, "yggdrasil", "address")].decode() in rules
    assert "324:71e:281a:9ed3::cafe" in rules  # peer3's extraYggdrasilIPs
    done = isolated(f"cat > /root/f.nft <<'EOF'\n{rules}EOF\nnft -f /root/f.nft && nft -f /root/f.nft && "
                    "nft list table ip6 pyclan-yggdrasil", net=True)  # applied twice: idempotent
    assert 'iifname "ygg" drop' in done.stdout


def test_a_bad_peer_uri_names_its_setting(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        extra = 'roles.default.settings.extraPeers = ["192.168.1.1"]\n'
        bad = CLAN.replace("[instances.internet]", extra + "[instances.internet]")
        _ = make_clan(bad).resolved
    assert err.value.problems[0].path.endswith("settings.extraPeers")
