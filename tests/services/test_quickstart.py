"""examples/quickstart end to end: resolve, generate real vars (age), evaluate, run part-A hooks."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyclan.clan import Clan, open_clan
from pyclan.config.machine_config import MachineConfig
from pyclan.services.library._common import sha512_crypt
from pyclan.services.library.internet import machine_host
from pyclan.vars import api as vars_api

Isolated = Callable[..., subprocess.CompletedProcess[str]]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
MACHINES = ["backup-server", "fred-laptop", "sally-laptop"]
DEMO_ADMIN_KEY = EXAMPLE.parent / "quickstart-demo-admin.age.key"
PROMPTS = json.loads((EXAMPLE.parent / "quickstart-prompts.json").read_text())


@contextlib.contextmanager
def admin_key(path: Path) -> Iterator[None]:
    """Point the vars engine at the test's admin key only while it is needed (xdist may interleave modules)."""
    old = os.environ.get("PYCLAN_AGE_KEY_FILE")
    os.environ["PYCLAN_AGE_KEY_FILE"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYCLAN_AGE_KEY_FILE", None)
        else:
            os.environ["PYCLAN_AGE_KEY_FILE"] = old


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Clan:
    """A copy of the example with its committed vars, read with the demo admin key."""
    root = tmp_path_factory.mktemp("quickstart")
    clan_dir = root / "quickstart"
    shutil.copytree(EXAMPLE, clan_dir)
    shutil.copy(DEMO_ADMIN_KEY, root / "admin-age.key")
    (root / "admin-age.key").chmod(0o600)  # git keeps no 0600; an admin key others can read is refused
    with admin_key(root / "admin-age.key"):
        clan = open_clan(clan_dir, {})
        report = vars_api.check(clan)
        assert report.ok, report.to_json()  # the committed vars are complete and readable
    return open_clan(clan_dir, {})


def test_committed_example_secrets_never_in_clear(quickstart: Clan) -> None:
    """Every secret of the example decrypts, and none of them occurs in clear in the clan folder."""
    with admin_key(quickstart.dir.parent / "admin-age.key"):
        secrets = [value for m in MACHINES for _, value in vars_api.machine_secrets(quickstart, m)]
    assert len(secrets) >= 20
    blobs = [p.read_bytes() for p in EXAMPLE.rglob("*") if p.is_file()]
    needles = [s.strip() for s in secrets if len(s.strip()) >= 8]  # shorter ones (an SSID) match by chance
    assert len(needles) >= 20
    for needle in needles:
        assert not any(needle in blob for blob in blobs)


@pytest.fixture(scope="module")
def configs(quickstart: Clan) -> dict[str, MachineConfig]:
    return quickstart.evaluator.configs()


def test_the_plan_resolves_as_documented() -> None:
    resolved = open_clan(EXAMPLE, {}).resolved.to_json()
    members = resolved["members"]
    assert members["sshd"] == {"server": MACHINES}
    assert members["wifi"] == {"default": ["fred-laptop", "sally-laptop"]}
    assert members["users-root"] == {"default": MACHINES}
    assert members["user-sally"] == {"default": ["sally-laptop"]}
    assert members["hello-world"] == {"evening": ["fred-laptop"], "morning": ["sally-laptop"]}
    assert members["zerotier"] == {"controller": ["backup-server"], "peer": MACHINES}
    assert members["wireguard"] == {"controller": ["backup-server"], "peer": ["fred-laptop", "sally-laptop"]}
    assert members["borgbackup"] == {"client": ["fred-laptop", "sally-laptop"], "server": ["backup-server"]}
    assert resolved["checks"] == []
    for m in MACHINES:
        assert resolved["machines"][m]["instances"]["internet"]["roles"]["default"]["settings"]["host"]


def test_every_machine_knows_every_host_key(quickstart: Clan, configs: dict[str, MachineConfig]) -> None:
    exports = quickstart.evaluator.exports()
    keys = {
        m: (quickstart.dir / f"vars/per-machine/{m}/openssh/ssh.id_ed25519.pub/value").read_text().split()[:2]
        for m in MACHINES
    }
    ca = (quickstart.dir / "vars/shared/openssh-ca/id_ed25519.pub/value").read_text().split()[:2]
    for cfg in configs.values():
        *known, authority = cfg.files["/etc/ssh/ssh_known_hosts"].content.splitlines()[1:]
        assert authority.split() == ["@cert-authority", "*.clan", *ca]  # Clan's default: the clan SSH CA
        assert len(known) == 3
        for line, other in zip(known, MACHINES, strict=True):
            names, *key = line.split()
            assert key == keys[other]
            assert {other, f"{other}.clan", str(machine_host(exports, other))} <= set(names.split(","))
        assert "openssh-server" in cfg.packages


def test_users_and_passwords(quickstart: Clan, configs: dict[str, MachineConfig]) -> None:
    assert sorted(configs["sally-laptop"].users) == ["root", "sally"]
    assert sorted(configs["fred-laptop"].users) == ["fred", "root"]
    with admin_key(quickstart.dir.parent / "admin-age.key"):
        gen = "user-password-sally"
        password = vars_api.decrypt_secret(quickstart, "sally-laptop", gen, "user-password").decode()
        hashed = vars_api.decrypt_secret(quickstart, "sally-laptop", gen, "user-password-hash").decode()
        deployed = {spec.path for spec, _ in vars_api.machine_secrets(quickstart, "sally-laptop")}
    assert hashed == sha512_crypt(password, hashed.split("$")[2])
    assert "/var/lib/pyclan/secrets/user-password-sally/user-password-hash" in deployed
    assert "/var/lib/pyclan/secrets/user-password-sally/user-password" not in deployed


def test_part_a_hooks_run_with_the_deployed_secrets(
    quickstart: Clan, configs: dict[str, MachineConfig], isolated: Isolated, etc_upper: Path
) -> None:
    cfg = configs["sally-laptop"]
    with admin_key(quickstart.dir.parent / "admin-age.key"):
        secrets = {spec.path: value for spec, value in vars_api.machine_secrets(quickstart, "sally-laptop")}
    files = {path: spec.content.encode() for path, spec in cfg.files.items()} | secrets
    script = f"{cfg.hooks['wifi-wifi'].script}\n{cfg.hooks['sshd-reload'].script}\nsh /usr/local/bin/greet-world\n"
    done = isolated(f"mkdir -p /run/sshd\n{script}", files=files)
    assert done.stdout.strip() == "Good morning World! I'm sally-laptop", done.stderr
    keyfile = configparser.ConfigParser(interpolation=None)
    keyfile.read_string((etc_upper / "NetworkManager/system-connections/home.nmconnection").read_text())
    assert (
        bytes(int(b) for b in keyfile["wifi"]["ssid"].split(";") if b) == PROMPTS["wifi.home"]["network-name"].encode()
    )
    assert keyfile["wifi-security"]["psk"] == PROMPTS["wifi.home"]["password"]


def test_packages_merge_per_machine(configs: dict[str, MachineConfig]) -> None:
    assert {"htop", "tree"} <= set(configs["backup-server"].packages)
    assert "tree" not in configs["sally-laptop"].packages
    assert "network-manager" in configs["sally-laptop"].packages
    assert "network-manager" not in configs["backup-server"].packages
