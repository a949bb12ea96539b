"""Done-when, on a real host: a clan whose Clan-made vars hold an SSH host key deploys with that same key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from clan_reference import reference_admin_key, write_clan_keys, write_clan_var
from deploy_support import DeployClan, LocalHosts, clan_ssh, started_hosts_fixture  # noqa: F401

from pyclan.services.library._common import openssh_ed25519_keypair

pytestmark = pytest.mark.hosts

CLAN_TOML = """\
[meta]
name = "fromclan"

[machines.cv-web]

[instances.sshd]
module.name = "sshd"
roles.server.machines.cv-web = {}
"""
HOST_KEY = "/var/lib/pyclan/secrets/openssh/ssh.id_ed25519"


def test_clan_made_host_key_is_what_the_deployed_host_presents(
    started_hosts: LocalHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (host,) = started_hosts(["cv-web"])
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("PYCLAN_AGE_KEY_FILE", "SOPS_AGE_KEY", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(reference_admin_key()))  # the only key the user has
    root = tmp_path / "clan"
    root.mkdir()
    (root / "clan.toml").write_text(CLAN_TOML)
    private, public = openssh_ed25519_keypair()
    machine_keys = write_clan_keys(root, ["cv-web"])
    write_clan_var(root, "per-machine/cv-web/openssh", "ssh.id_ed25519", private.encode(), secret=True,
                   machines=machine_keys)
    write_clan_var(root, "per-machine/cv-web/openssh", "ssh.id_ed25519.pub", public.encode(), secret=False)
    clan = DeployClan(root)

    refused = clan.cli("machines", "update", "cv-web")
    assert refused.returncode == 1 and "pyclan vars import --from-clan" in refused.stderr
    clan.cli("vars", "import", "--from-clan", check=True)
    clan.cli("machines", "update", "cv-web", check=True, timeout=600)

    run = clan_ssh(root)  # trusts only the clan's host keys from now on
    assert run(host, f"cat {HOST_KEY}").stdout == private
    scan = subprocess.run(["ssh-keyscan", "-T", "10", "-t", "ed25519", host.address], capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    assert scan.stdout.split()[1:3] == public.split()[:2], scan.stderr
