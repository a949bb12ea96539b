"""tor: onion keys made in Python that real tor accepts, the torrc it verifies, Clan's exports."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogue_support import check_and_build, example_clan

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library.tor import ONION_DIR, SECRET_KEY, TORRC, onion_address, onion_keypair
from pyclan.vars.api import get

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

CLAN = """
[meta]
name = "onion"
[machines.server1]
[machines.laptop]
[instances.tor]
roles.server.machines.server1 = {}
roles.client.machines.laptop = {}
"""


def _hostname_tor_derives(tmp_path: Path, secret_key: bytes) -> str:
    """Start real tor (no network) on a hidden-service dir holding only the secret key; read its hostname."""
    hs, data = tmp_path / "hs", tmp_path / "data"
    hs.mkdir(mode=0o700)
    data.mkdir(mode=0o700)
    (hs / SECRET_KEY).write_bytes(secret_key)
    (hs / SECRET_KEY).chmod(0o600)
    torrc = tmp_path / "torrc"
    torrc.write_text(f"DataDirectory {data}\nSocksPort 0\nDisableNetwork 1\nHiddenServiceDir {hs}\n"
                     "HiddenServicePort 22 127.0.0.1:22\nLog notice stderr\n")
    proc = subprocess.Popen(["tor", "-f", str(torrc)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):  # tor writes the hostname while loading its keys, before any network use
            if (hs / "hostname").exists() and (hs / "hostname").read_text().endswith("\n"):
                break
            if proc.poll() is not None:
                raise AssertionError(f"tor exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return (hs / "hostname").read_text()


def test_clans_readme_example_checks_and_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = check_and_build(example_clan("tor", tmp_path, monkeypatch))
    assert built.check.checks == []
    for machine in ("server1", "server2"):
        manifest = built.generations[machine].manifest
        assert "tor" in manifest.packages
        assert f"/var/lib/pyclan/secrets/tor_tor/{SECRET_KEY}" in manifest.secrets
        # the default keeps the hostname secret (Clan's secretHostname = true): not in the clan in clear
        _, hostname = get(built.clan, machine, "tor_tor/hostname")
        assert hostname.decode().endswith(".onion\n")
        assert not (built.clan.dir / f"vars/per-machine/{machine}/tor_tor/hostname/value").exists()
        torrc = built.generations[machine].objects[manifest.files[TORRC].sha256].decode()
        assert "HiddenServiceDir /var/lib/tor/onion/clan_tor\n" in torrc
        assert "HiddenServicePort 22 127.0.0.1:22\n" in torrc and "SocksPort 0\n" in torrc


def test_python_made_keys_give_the_hostname_real_tor_derives(tmp_path: Path) -> None:
    secret, public, hostname = onion_keypair()
    assert secret.startswith(b"== ed25519v1-secret: type0 ==\x00\x00\x00") and len(secret) == 96
    assert len(hostname) == 63 and hostname == onion_address(public[32:]) + "\n"
    assert _hostname_tor_derives(tmp_path, secret) == hostname


def test_onion_address_of_a_known_key() -> None:
    """rend-spec-v3's encoding: base32(pubkey | sha3-256(".onion checksum" | pubkey | 03)[:2] | 03)."""
    assert onion_address(bytes(32)) == "a" * 51 + "m2dqd.onion"  # 56 characters, as every v3 address


def test_the_hook_places_the_key_and_tor_verifies_the_config(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated
) -> None:
    clan = make_clan(CLAN + "roles.server.settings.portMapping = [80, { port = 443, target.port = 8443 }]\n")
    made = generate_vars(clan)
    cfg = make_clan(CLAN + "roles.server.settings.portMapping = [80, { port = 443, target.port = 8443 }]\n"
                    ).evaluator.config("server1")
    torrc = cfg.files[TORRC].content
    assert [line for line in torrc.splitlines() if line.startswith("HiddenServicePort")] == [
        "HiddenServicePort 80 127.0.0.1:80", "HiddenServicePort 443 127.0.0.1:8443"
    ]  # a definition replaces the default (SSH), as in Nix
    files = {TORRC: torrc.encode(), **made.host_files("server1"), "/root/hook.sh": cfg.hooks["tor"].script.encode()}
    folder = f"{ONION_DIR}/clan_tor"
    done = isolated(f"sh /root/hook.sh && stat -c '%U %a' {folder} {folder}/{SECRET_KEY} && "
                    f"cmp /var/lib/pyclan/secrets/tor_tor/{SECRET_KEY} {folder}/{SECRET_KEY} && echo same",
                    files=files)
    assert done.stdout.split("\n")[:3] == ["debian-tor 2700", "debian-tor 600", "same"]  # setgid from /var/lib/tor

    broken = torrc.replace("HiddenServiceVersion 3", "HiddenServiceVersion 3\nHiddenServicePort notaport")
    failed = isolated("sh /root/hook.sh", files={**files, TORRC: broken.encode()}, check=False)
    assert failed.returncode == 1 and "does not pass tor --verify-config" in failed.stderr


def test_secret_hostname_false_makes_it_a_public_var(make_clan: MakeClan, generate_vars: Callable[..., Any]) -> None:
    clan = make_clan(CLAN + "roles.server.settings.secretHostname = false\n")
    gen = clan.evaluator.generators()["server1"]["tor_tor"].generator
    assert gen.files["hostname"].secret is False and gen.files[SECRET_KEY].secret is True
    made = generate_vars(clan)
    value = (clan.dir / "vars/per-machine/server1/tor_tor/hostname/value").read_text()
    assert value == made.public[("server1", "tor_tor", "hostname")].decode() and value.endswith(".onion\n")


def test_clients_keep_the_socks_proxy_and_get_torsocks(make_clan: MakeClan) -> None:
    laptop = make_clan(CLAN).evaluator.config("laptop")
    assert {"tor", "torsocks"} <= set(laptop.packages)
    assert "SocksPort 0" not in laptop.files[TORRC].content and "HiddenServiceDir" not in laptop.files[TORRC].content


def test_exports_as_clans_networking_interface(make_clan: MakeClan) -> None:
    exports = make_clan(CLAN).evaluator.exports()
    assert exports["tor:tor::"]["networking"] == {"priority": 10, "module": "clan_lib.network.tor"}
    assert json.loads(json.dumps(exports["tor:tor:server:server1"]["peer"])) == {
        "hosts": [{"var": {"machine": "server1", "generator": "tor_tor", "file": "hostname"}}]
    }


def test_a_bad_target_names_its_setting(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        _ = make_clan(CLAN + 'roles.server.settings.portMapping = [{ port = 80, target.addr = "a b" }]\n').resolved
    assert "portMapping" in err.value.problems[0].path
