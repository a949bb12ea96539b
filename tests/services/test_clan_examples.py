"""Clan's own usage examples pass unchanged: each bundled service's README examples and Clan's default
template, written as `inventory.json` under `clan_examples/`, go through `pyclan check` (every stage that
needs no host), `vars generate` (real generators, age) and `machines build` for every machine; then what
each example asks for is looked up in the built configuration.

The inventories follow the examples of clan-core's `clanServices/<name>/README.md` and
`templates/clan/default/clan.nix`, with names and values of our own. A `prompts.json` next to an
inventory answers its prompts.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyclan.api import check_clan
from pyclan.build.generation import build
from pyclan.clan import Clan, open_clan
from pyclan.config.machine_config import MachineConfig
from pyclan.vars.generate import generate
from pyclan.vars.keys import KEY_FILE_ENV, keygen

EXAMPLES = Path(__file__).parent / "clan_examples"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "inventory.json").is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple[Clan, dict[str, MachineConfig]]]]:
    """Per example (made once): a copy with generated vars, checked and built; its configs."""
    root = tmp_path_factory.mktemp("clan-examples")
    cache: dict[str, tuple[Clan, dict[str, MachineConfig]]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_FILE_ENV, str(root / "admin.key"))
        mp.setenv("PYCLAN_CACHE_DIR", str(root / "cache"))

        def make(name: str) -> tuple[Clan, dict[str, MachineConfig]]:
            if name not in cache:
                clan_dir = root / name
                shutil.copytree(EXAMPLES / name, clan_dir)
                keygen(clan_dir, "tester")
                prompts = clan_dir / "prompts.json"
                generate(open_clan(clan_dir, {}), prompt_values=prompts if prompts.exists() else {})
                report = check_clan(str(clan_dir))
                assert report.ok, report
                assert report.warnings == [], report.warnings
                clan = open_clan(clan_dir, {})
                for machine in clan.resolved.machine_names:
                    gen = build(clan, machine)
                    assert len(gen.id) == 64
                cache[name] = (clan, clan.evaluator.configs())
            return cache[name]

        yield make


@pytest.mark.parametrize("name", NAMES)
def test_clan_example_passes_check_generate_and_build(
    name: str, built: Callable[[str], tuple[Clan, dict[str, MachineConfig]]]
) -> None:
    clan, configs = built(name)
    assert set(configs) == set(json.loads((EXAMPLES / name / "inventory.json").read_text())["machines"])
    CHECKS.get(name, lambda c, m: None)(clan, configs)


def test_every_bundled_service_has_an_example() -> None:
    used = set()
    for name in NAMES:
        for inst_name, inst in json.loads((EXAMPLES / name / "inventory.json").read_text())["instances"].items():
            used.add((inst.get("module") or {}).get("name", inst_name))
    bundled = {"sshd", "users", "zerotier", "wireguard", "borgbackup", "wifi", "internet", "packages", "hello-world"}
    assert bundled <= used


# -- what each example asks for, in the built configuration ----------------------------------------------


def _public(clan: Clan, *parts: str) -> str:
    return (clan.dir / "vars" / Path(*parts) / "value").read_text()


def _known(cfg: MachineConfig) -> list[str]:
    return cfg.files["/etc/ssh/ssh_known_hosts"].content.splitlines()


def _principals(clan: Clan, machine: str) -> list[str]:
    cert = clan.dir / f"vars/per-machine/{machine}/openssh-cert/ssh.id_ed25519-cert.pub/value"
    listing = subprocess.run(["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, check=True)
    return listing.stdout.split("Principals:")[1].split("Critical Options:")[0].split()


def _sshd_certificates(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    ca = " ".join(_public(clan, "shared/openssh-ca/id_ed25519.pub").split()[:2])
    for machine, cfg in configs.items():
        assert f"@cert-authority *.fleet,*.corp.example {ca}" in _known(cfg)
        assert _principals(clan, machine) == [f"{machine}.fleet", f"{machine}.corp.example"]
        conf = cfg.files["/etc/ssh/sshd_config.d/00-clan-sshd.conf"].content
        assert "HostKey /var/lib/pyclan/secrets/openssh-rsa/ssh.id_rsa" in conf and "HostCertificate" in conf


def _sshd_basic(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    for cfg in configs.values():
        assert cfg.files["/etc/ssh/authorized_keys.sshd.d/root"].content.splitlines()[1].endswith("ops@example")
        assert not any(line.startswith("@cert-authority") for line in _known(cfg))
        assert "HostCertificate" not in cfg.files["/etc/ssh/sshd_config.d/00-clan-sshd.conf"].content
    assert not (clan.dir / "vars/shared/openssh-ca").exists()


def _sshd_per_environment(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    ca = " ".join(_public(clan, "shared/openssh-ca/id_ed25519.pub").split()[:2])
    assert _principals(clan, "app1") == ["app1.clan", "app1.live.corp.example", "app1.test.corp.example"]
    # a client trusts meta.domain, its own and every server's domains (Clan's union), once
    for machine in ("workstation", "build-runner"):
        line = next(x for x in _known(configs[machine]) if x.startswith("@cert-authority"))
        assert line == f"@cert-authority *.clan,*.live.corp.example,*.test.corp.example {ca}"


def _users_accounts(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    assert set(configs["desk"].users) == {"dana", "eve"}
    assert set(configs["finns-laptop"].users) == {"dana", "eve", "finn"}
    assert configs["desk"].files["/etc/ssh/authorized_keys.d/eve"].content.splitlines()[1].endswith("eve@example")
    assert (clan.dir / "vars/shared/user-password-eve").is_dir()  # share = true
    assert (clan.dir / "vars/per-machine/finns-laptop/user-password-finn").is_dir()


def _users_root_and_groups(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    box = configs["box"]
    assert box.users["dana"].groups == ("sudo", "netdev")  # wheel, networkmanager on Debian
    assert box.files["/etc/ssh/authorized_keys.d/dana"].content.splitlines()[1].endswith("dana@example")
    assert box.users["root"].hashed_password_file == "/var/lib/pyclan/secrets/user-password-root/user-password-hash"


def _zerotier_readme(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    nwid = _public(clan, "shared/zerotier-network-zerotier/network-id").strip()
    hub = configs["hub"].files
    members = [p for p in hub if p.startswith(f"/etc/zerotier/pyclan/controller/{nwid}/member/")]
    assert len(members) == 3
    assert json.loads(configs["relay"].files["/etc/zerotier/pyclan/moon/zerotier.json"].content) == ["203.0.113.9"]
    relay_ip = _public(clan, "shared/zerotier-ip-relay-zerotier/ip").strip()
    node_id = ipaddress.ip_address(relay_ip).exploded.replace(":", "")[-10:]  # rfc4193: the node id ends the address
    orbit = f"/etc/zerotier/pyclan/orbit/{node_id}"
    assert orbit in configs["notebook"].files and orbit in configs["hub"].files  # the moon is orbited


def _zerotier_seed(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    nwid = _public(clan, "shared/zerotier-network-my-vpn/network-id").strip()
    net = json.loads(configs["some-server-name"].files[f"/etc/zerotier/pyclan/controller/{nwid}.json"].content)
    assert net["v4AssignMode"] == {"zt": True} and len(net["routes"]) == 1 and len(net["ipAssignmentPools"]) == 1


def _wireguard_single(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    tablet = configs["tablet"].files["/etc/wireguard/wireguard.conf"].content
    assert "Endpoint = vpn.corp.example:51820" in tablet


def _wireguard_multi(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    tablet = configs["tablet"].files["/etc/wireguard/wireguard.conf"].content
    for gw in ("a", "b", "c"):
        assert f"Endpoint = {gw}.vpn.corp.example:51820" in tablet


def _borgbackup(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    units = configs["notebook"].units
    assert "borgbackup-job-offsite.service" in units and "borgbackup-job-offsite.timer" in units


def _wifi(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    hook = configs["notebook"].hooks["wifi-wifi"].script
    assert "key-mgmt=wpa-eap" in hook and "key-mgmt=wpa-psk" in hook


def _packages(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    assert configs["server"].packages == ["cbonsai"]


def _hello(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    assert configs["peer1"].files["/etc/hello-world/test"].content == "Good morning World!\n"
    assert configs["peer2"].files["/etc/hello-world/test"].content == "Good night World!\n"


def _internet(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    from pyclan.services.library.internet import machine_target

    target = machine_target(clan.evaluator.exports(), "server2")
    assert target is not None and (target.host, target.port, target.user) == ("198.51.100.20", 45621, "admin")


def _template(clan: Clan, configs: dict[str, MachineConfig]) -> None:
    cfg = configs["test-machine"]
    assert "PASTE_YOUR_KEY_HERE" in cfg.files["/etc/ssh/authorized_keys.sshd.d/root"].content
    assert any(line.startswith("@cert-authority *.my-clan.lan ") for line in _known(cfg))


CHECKS: dict[str, Callable[[Clan, dict[str, MachineConfig]], None]] = {
    "sshd-certificates": _sshd_certificates,
    "sshd-basic": _sshd_basic,
    "sshd-per-environment": _sshd_per_environment,
    "users-accounts": _users_accounts,
    "users-root-and-groups": _users_root_and_groups,
    "zerotier-readme": _zerotier_readme,
    "zerotier-seed": _zerotier_seed,
    "wireguard-single-controller": _wireguard_single,
    "wireguard-multi-controller": _wireguard_multi,
    "borgbackup-storagebox": _borgbackup,
    "wifi-readme": _wifi,
    "packages-readme": _packages,
    "hello-world-test": _hello,
    "internet-readme": _internet,
    "template-default": _template,
}
