"""wifi: settings defaults, prompted shared generators, and the keyfile rendered by the real hook."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyclan.clan import Clan
from pyclan.errors import ClanError

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

CLAN = """
[meta]
name = "w"
[machines.sally-laptop]
tags = ["laptop"]
[machines.fred-laptop]
tags = ["laptop"]
[instances.wifi]
roles.default.tags = ["laptop"]
roles.default.settings.networks.home = {}
roles.default.machines.sally-laptop.settings.networks.office = { autoConnect = false, keyMgmt = "sae" }
roles.default.machines.sally-laptop.settings.networks.cafe = { keyMgmt = "none" }
"""

CONNECTIONS = "NetworkManager/system-connections"  # under the /etc overlay


def _keyfile(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def _ssid(value: str) -> bytes:
    return bytes(int(b) for b in value.split(";") if b)


def _gkeyfile_unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append({"s": " ", "t": "\t", "n": "\n", "\\": "\\"}[value[i + 1]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def test_networks_merge_and_get_defaults(make_clan: MakeClan) -> None:
    resolved = make_clan(CLAN).resolved.to_json()["machines"]
    sally = resolved["sally-laptop"]["instances"]["wifi"]["roles"]["default"]["settings"]["networks"]
    assert sally == {
        "home": {"enable": True, "autoConnect": True, "keyMgmt": "wpa-psk"},
        "office": {"enable": True, "autoConnect": False, "keyMgmt": "sae"},
        "cafe": {"enable": True, "autoConnect": True, "keyMgmt": "none"},
    }
    fred = resolved["fred-laptop"]["instances"]["wifi"]["roles"]["default"]["settings"]["networks"]
    assert list(fred) == ["home"]


def test_generators_are_shared_prompts(make_clan: MakeClan) -> None:
    gens = make_clan(CLAN).evaluator.generators()
    assert sorted(gens["sally-laptop"]) == ["wifi.cafe", "wifi.home", "wifi.office"]
    home = gens["sally-laptop"]["wifi.home"].generator
    assert home.share
    assert {p: (q.type, q.persist) for p, q in home.prompts.items()} == {
        "network-name": ("line", True), "password": ("hidden", True),
    }
    assert all(f.secret for f in home.files.values())
    assert gens["fred-laptop"]["wifi.home"].generator == home
    assert set(gens["sally-laptop"]["wifi.cafe"].generator.prompts) == {"network-name"}


def test_the_config_holds_no_secret(make_clan: MakeClan, generate_vars: Callable[..., Any]) -> None:
    clan = make_clan(CLAN)
    generate_vars(clan, {"wifi.home": {"network-name": "MyHome", "password": "hunter22"},
                         "wifi.office": {"network-name": "Corp", "password": "p"},
                         "wifi.cafe": {"network-name": "Cafe"}})
    cfg = clan.evaluator.config("sally-laptop")
    dump = cfg.model_dump_json()
    assert "MyHome" not in dump and "hunter22" not in dump
    assert "network-manager" in cfg.packages
    nm = configparser.ConfigParser()
    nm.read_string(cfg.files["/etc/NetworkManager/conf.d/pyclan-wifi.conf"].content)
    assert nm["keyfile"]["unmanaged-devices"] == "except:type:wifi"
    assert cfg.secrets["/var/lib/pyclan/secrets/wifi.home/password"].shared


def test_hook_renders_keyfiles_from_the_secrets(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated, etc_upper: Path
) -> None:
    clan = make_clan(CLAN)
    ssid, psk = "Café; \\ the \"best\"", " pass\\word with\tspaces "
    made = generate_vars(clan, {"wifi.home": {"network-name": ssid + "\n", "password": psk},
                                "wifi.office": {"network-name": "Corp", "password": "sae-secret"},
                                "wifi.cafe": {"network-name": "Free WiFi"}})
    cfg = clan.evaluator.config("sally-laptop")
    isolated(cfg.hooks["wifi-wifi"].script, files=made.host_files("sally-laptop"))

    home_path = etc_upper / CONNECTIONS / "home.nmconnection"
    assert stat.S_IMODE(os.stat(home_path).st_mode) == 0o600
    home = _keyfile(home_path)
    assert home["connection"]["type"] == "wifi" and home["connection"]["autoconnect"] == "true"
    assert _ssid(home["wifi"]["ssid"]) == ssid.encode()
    assert home["wifi-security"]["key-mgmt"] == "wpa-psk"
    assert _gkeyfile_unescape(home["wifi-security"]["psk"]) == psk

    office = _keyfile(etc_upper / CONNECTIONS / "office.nmconnection")
    assert office["connection"]["autoconnect"] == "false"
    assert (office["wifi-security"]["key-mgmt"], office["wifi-security"]["psk"]) == ("sae", "sae-secret")

    cafe = _keyfile(etc_upper / CONNECTIONS / "cafe.nmconnection")
    assert _ssid(cafe["wifi"]["ssid"]) == b"Free WiFi" and "wifi-security" not in cafe
    uuids = {home["connection"]["uuid"], office["connection"]["uuid"], cafe["connection"]["uuid"]}
    assert len(uuids) == 3


def test_hook_removes_networks_that_were_dropped_only(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated, etc_upper: Path
) -> None:
    answers = {"wifi.home": {"network-name": "H", "password": "12345678"},
               "wifi.office": {"network-name": "O", "password": "12345678"},
               "wifi.cafe": {"network-name": "C"}}
    before = make_clan(CLAN, name="before")
    made = generate_vars(before, answers)
    old_hook = before.evaluator.config("sally-laptop").hooks["wifi-wifi"].script
    cafe = 'roles.default.machines.sally-laptop.settings.networks.cafe = { keyMgmt = "none" }\n'
    after = make_clan(CLAN.replace(cafe, ""), name="after")
    new_hook = after.evaluator.config("sally-laptop").hooks["wifi-wifi"].script
    foreign = "/etc/NetworkManager/system-connections/mine.nmconnection"
    script = f"{old_hook}\nprintf '[connection]\\nid=mine\\n' > {foreign}\n{new_hook}"
    isolated(script, files=made.host_files("sally-laptop"))
    names = sorted(p.name for p in (etc_upper / CONNECTIONS).iterdir())
    assert names == ["home.nmconnection", "mine.nmconnection", "office.nmconnection"]


def test_hook_fails_clearly_without_the_secret(make_clan: MakeClan, isolated: Isolated) -> None:
    cfg = make_clan(CLAN).evaluator.config("fred-laptop")
    done = isolated(cfg.hooks["wifi-wifi"].script, check=False)
    assert done.returncode != 0
    assert "wifi: missing secret /var/lib/pyclan/secrets/wifi.home/network-name" in done.stderr


def test_disabled_networks_and_bad_names(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN + "roles.default.machines.fred-laptop.settings.networks.home.enable = false\n")
    assert "wifi.home" not in clan.evaluator.generators()["fred-laptop"]
    with pytest.raises(ClanError) as err:
        make_clan(CLAN.replace("networks.home", 'networks."my home"'), name="bad").evaluator.config("fred-laptop")
    assert err.value.problems[0].path == 'instances.wifi.roles.default.machines.fred-laptop.settings.networks.my home'

    with pytest.raises(ClanError) as err:
        _ = make_clan(CLAN.replace('keyMgmt = "sae"', 'keyMgmt = "wpa3"'), name="badkm").resolved
    assert err.value.problems[0].kind == "settings-type"
    assert "keyMgmt" in err.value.problems[0].path
