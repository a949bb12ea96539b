"""syncthing: identities and device ids made in Python that syncthing agrees with; config per peer."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogue_support import check_and_build, example_clan

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library.syncthing import TEMPLATE, syncthing_identity, valid_device_id
from pyclan.vars.api import get

MakeClan = Callable[..., Clan]
PHONE = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2"  # Clan's example id

CLAN = f"""
[meta]
name = "sync"
[machines.laptop]
[machines.desktop]
[machines.nas]
[instances.syncthing]
roles.peer.tags = ["all"]
roles.peer.settings.folders.documents = {{ path = "/srv/documents" }}
roles.peer.settings.folders.photos = {{ path = "/srv/photos", devices = ["nas", "laptop"], type = "sendonly" }}
roles.peer.machines.laptop.settings.extraDevices.phone = {{ id = "{PHONE}", name = "My Phone" }}
[instances.internet]
roles.default.machines.nas.settings.host = "192.0.2.7"
"""


def _config(clan: Clan, machine: str) -> ET.Element:
    return ET.fromstring(clan.evaluator.config(machine).files[TEMPLATE].content)


def test_clans_readme_example_checks_and_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = check_and_build(example_clan("syncthing", tmp_path, monkeypatch))
    assert built.check.checks == []
    ids = {m: get(built.clan, m, "syncthing/id")[1].decode().strip() for m in ("desktop", "laptop")}
    assert all(valid_device_id(i) for i in ids.values()) and len(set(ids.values())) == 2
    for machine in ("desktop", "laptop"):
        gen = built.generations[machine]
        config = ET.fromstring(gen.objects[gen.manifest.files[TEMPLATE].sha256])
        [folder] = config.findall("folder")
        assert (folder.get("id"), folder.get("path")) == ("documents", "/home/youruser/syncthing/documents")
        assert sorted(d.get("id") for d in folder.findall("device")) == sorted(ids.values())
        assert "syncthing.service" in gen.manifest.units and "syncthing" in gen.manifest.users
        assert {f"/var/lib/pyclan/secrets/syncthing/{f}" for f in ("key", "cert", "api")} <= set(gen.manifest.secrets)


def test_syncthing_computes_the_same_device_id_from_pythons_certificate(tmp_path: Path) -> None:
    key, cert, ident = syncthing_identity()
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "cert.pem").write_text(cert)
    done = subprocess.run(["syncthing", "serve", "--device-id", f"--home={tmp_path}"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == ident


def test_device_id_check_characters() -> None:
    assert valid_device_id(PHONE)
    broken = PHONE[:-1] + ("A" if PHONE[-1] != "A" else "B")
    assert not valid_device_id(broken)


def test_folders_go_to_their_devices_only_and_peers_know_each_other(
    make_clan: MakeClan, generate_vars: Callable[..., Any]
) -> None:
    made = generate_vars(make_clan(CLAN))
    clan = make_clan(CLAN)
    ids = {m: made.public[(m, "syncthing", "id")].decode().strip() for m in ("desktop", "laptop", "nas")}
    laptop = _config(clan, "laptop")
    devices = {d.get("name"): d for d in laptop.findall("device")}
    assert set(devices) == {"desktop", "laptop", "nas", "My Phone"}
    assert [a.text for a in devices["nas"].findall("address")] == [
        "dynamic", "tcp://nas.clan:22000", "tcp://192.0.2.7:22000"  # Clan's two, plus the internet address
    ]
    folders = {f.get("id"): f for f in laptop.findall("folder")}
    assert sorted(d.get("id") for d in folders["documents"].findall("device")) == sorted([*ids.values(), PHONE])
    assert sorted(d.get("id") for d in folders["photos"].findall("device")) == sorted([ids["nas"], ids["laptop"]])
    assert folders["photos"].get("type") == "sendonly"
    desktop = _config(clan, "desktop")
    assert [f.get("id") for f in desktop.findall("folder")] == ["documents"]  # not one of photos' devices
    assert "My Phone" not in {d.get("name") for d in desktop.findall("device")}  # the phone is laptop's


def test_before_vars_the_daemon_is_not_configured(make_clan: MakeClan) -> None:
    cfg = make_clan(CLAN).evaluator.config("laptop")
    assert "syncthing.service" not in cfg.units and TEMPLATE not in cfg.files and "syncthing" in cfg.users


def test_a_bad_extra_device_id_names_its_setting(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        _ = make_clan(CLAN.replace(PHONE, PHONE[:-1] + "A" if PHONE[-1] != "A" else "B")).resolved
    assert err.value.problems[0].path.endswith("settings.extraDevices.phone.id")
