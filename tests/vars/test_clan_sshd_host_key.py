"""Done-when: a clan whose Clan-made vars hold an SSH host key deploys with that same key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from clan_reference import reference_admin_key, write_clan_keys, write_clan_var

from pyclan.build.generation import build
from pyclan.build.secrets import secret_values
from pyclan.clan import open_clan
from pyclan.services.library._common import openssh_ed25519_keypair
from pyclan.vars import keys, sops
from pyclan.vars.api import check, generate_missing, import_from_clan
from pyclan.vars.view import secret_host_path

CLAN_TOML = """\
[meta]
name = "fromclan"
domain = "home.arpa"

[machines.web]

[instances.sshd]
module.name = "sshd"
roles.server.machines.web = {}
"""
KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
SSHD_CONF = "/etc/ssh/sshd_config.d/00-clan-sshd.conf"


def test_clan_made_ssh_host_key_is_deployed_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in (keys.KEY_FILE_ENV, sops.KEY_ENV, "XDG_CONFIG_HOME", "CLAN_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(sops.KEY_FILE_ENV, str(reference_admin_key()))
    root = tmp_path / "clan"
    root.mkdir()
    (root / "clan.toml").write_text(CLAN_TOML)
    # Clan's `openssh` generator, stored by Clan's sops backend (no validation → no .validation-hash)
    machine_keys = write_clan_keys(root, ["web"])
    private, public = openssh_ed25519_keypair()
    write_clan_var(root, "per-machine/web/openssh", "ssh.id_ed25519", private.encode(), secret=True,
                   machines=machine_keys)
    write_clan_var(root, "per-machine/web/openssh", "ssh.id_ed25519.pub", public.encode(), secret=False)
    assert (root / "vars/per-machine/web/openssh/ssh.id_ed25519/machines/web").is_symlink()

    report = import_from_clan(open_clan(root, {}))
    assert [(g.label, g.status) for g in report.generators] == [("web/openssh", "current")]
    # what `machines update` runs first must keep the key (other generators of the service may be made)
    generate_missing(open_clan(root, {}))
    clan = open_clan(root, {})
    assert not [i for i in check(clan).issues if i.var.startswith("web/openssh")]

    gen = build(clan, "web", write=False)
    key_path = secret_host_path("openssh", "ssh.id_ed25519")
    conf = gen.objects[gen.manifest.files[SSHD_CONF].sha256].decode()
    assert f"HostKey {key_path}" in conf
    known = gen.objects[gen.manifest.files[KNOWN_HOSTS].sha256].decode()
    assert " ".join(public.split()[:2]) in known
    stored = root / "vars/per-machine/web/openssh/ssh.id_ed25519/secret.age"
    assert gen.manifest.secrets[key_path].digest == hashlib.sha256(stored.read_bytes()).hexdigest()
    # the value deploy uploads to the host is Clan's private key, byte for byte
    assert gen.config is not None
    assert secret_values(clan, "web", gen.config)["openssh/ssh.id_ed25519"] == private.encode()
