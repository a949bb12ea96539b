"""borgbackup: client keys, the server's restricted authorized keys, and real backups with borg.

The end-to-end test runs the rendered job script with real `borg` against a repository created by
the server's rendered hook; ssh is replaced by a stand-in that runs exactly the forced command of the
client's line in the server's rendered authorized_keys (what sshd would do), so the repository
restriction is borg's own. All of it runs in a private mount namespace (`isolated`).
"""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyclan.clan import Clan, open_clan
from pyclan.config.machine_config import MachineConfig
from pyclan.errors import ClanError
from pyclan.vars.api import decrypt_secret
from pyclan.vars.generate import generate
from pyclan.vars.keys import KEY_FILE_ENV, keygen

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

CLAN = """
[meta]
name = "bk"
[machines.backup-server]
[machines.plain-server]
[machines.laptop1]
tags = ["laptop"]
[machines.laptop2]
tags = ["laptop"]
[instances.internet]
roles.default.machines.backup-server.settings.host = "192.168.1.100"
[instances.sshd]
roles.server.machines.backup-server = {}
[instances.borgbackup]
roles.server.machines.backup-server = {}
roles.client.tags.laptop = {}
roles.client.settings.directories = ["/var/lib/data"]
roles.client.settings.exclude = ["*.tmp"]
roles.client.machines.laptop2.settings.startAt = "*-*-* 03:30:00"
[instances.offsite]
module.name = "borgbackup"
roles.server.machines.plain-server.settings.address = "backup.example.org"
roles.server.machines.plain-server.settings.directory = "/srv/borg"
roles.client.machines.laptop1.settings.destinations.storagebox.repo = "u1@u1.example.net:./borg"
"""

KEY = "/var/lib/pyclan/secrets/borgbackup/borgbackup.ssh"
PASS = "/var/lib/pyclan/secrets/borgbackup/borgbackup.repokey"


@pytest.fixture
def clan(make_clan: MakeClan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Clan:
    """The clan above with vars from the real vars engine (age-encrypted secrets)."""
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "admin.key"))
    made = make_clan(CLAN)
    keygen(made.dir, "tester")
    generate(made)
    return open_clan(made.dir, {})


def _pub(clan: Clan, machine: str, generator: str, file: str) -> str:
    return (clan.dir / f"vars/per-machine/{machine}/{generator}/{file}/value").read_text().strip()


def _unit(text: str) -> dict[str, list[str]]:
    """A unit file as key → values (Environment= words unquoted as systemd does)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).extend(shlex.split(value) if key == "Environment" else [value])
    return out


def _env(unit_text: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in _unit(unit_text)["Environment"])


def test_client_key_and_passphrase(clan: Clan, tmp_path: Path) -> None:
    gen = clan.evaluator.generators()["laptop1"]["borgbackup"].generator
    assert {f: v.secret for f, v in gen.files.items()} == {
        "borgbackup.ssh": True, "borgbackup.ssh.pub": False, "borgbackup.repokey": True,
    }  # fmt: skip
    key = tmp_path / "key"
    key.write_bytes(decrypt_secret(clan, "laptop1", "borgbackup", "borgbackup.ssh"))
    key.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
    public = _pub(clan, "laptop1", "borgbackup", "borgbackup.ssh.pub")
    assert derived.stdout.split()[:2] == public.split()[:2] and public.startswith("ssh-ed25519 ")
    passphrase = decrypt_secret(clan, "laptop1", "borgbackup", "borgbackup.repokey").decode()
    other = decrypt_secret(clan, "laptop2", "borgbackup", "borgbackup.repokey").decode()
    assert len(passphrase) >= 30 and passphrase != other
    assert "borgbackup" not in clan.evaluator.generators()["backup-server"]  # servers need no key


def test_server_authorises_each_client_for_its_own_repository_only(clan: Clan) -> None:
    cfg = clan.evaluator.config("backup-server")
    user = cfg.users["borg"]
    assert (user.system, user.group, user.home, user.shell) == (True, "borg", "/var/lib/borgbackup", "/bin/sh")
    assert list(user.authorized_keys) == [
        f'command="borg serve --restrict-to-path /var/lib/borgbackup/{c}",restrict '
        f"{_pub(clan, c, 'borgbackup', 'borgbackup.ssh.pub')} borgbackup@{c}"
        for c in ("laptop1", "laptop2")
    ]
    assert {"borgbackup", "openssh-server"} <= set(cfg.packages)
    other = clan.evaluator.config("plain-server").users["borg"]
    assert [k.split('"')[1] for k in other.authorized_keys] == ["borg serve --restrict-to-path /srv/borg/laptop1"]


def test_server_hook_creates_private_repositories(clan: Clan, isolated: Isolated) -> None:
    hook = clan.evaluator.config("backup-server").hooks["borgbackup-repos-borgbackup"].script
    done = isolated(f"useradd --system --user-group borg\n{hook}\n{hook}\nstat -c '%a %U %n' /var/lib/borgbackup/*")
    assert done.stdout.splitlines() == [
        "700 borg /var/lib/borgbackup/laptop1",
        "700 borg /var/lib/borgbackup/laptop2",
    ]


def test_client_jobs_timers_and_pinned_host_key(clan: Clan) -> None:
    cfg = clan.evaluator.config("laptop1")
    assert {"borgbackup", "openssh-client"} <= set(cfg.packages)
    assert sorted(cfg.units) == [
        "borgbackup-job-backup-server.service", "borgbackup-job-backup-server.timer",
        "borgbackup-job-plain-server.service", "borgbackup-job-plain-server.timer",
        "borgbackup-job-storagebox.service", "borgbackup-job-storagebox.timer",
    ]  # fmt: skip
    service = cfg.units["borgbackup-job-backup-server.service"]
    assert not service.enabled and not service.start  # the timer starts it
    timer = cfg.units["borgbackup-job-backup-server.timer"]
    assert timer.enabled and _unit(timer.content)["OnCalendar"] == ["*-*-* 01:00:00"]
    assert _unit(timer.content)["Persistent"] == ["yes"] and _unit(timer.content)["WantedBy"] == ["timers.target"]
    assert _unit(clan.evaluator.config("laptop2").units["borgbackup-job-backup-server.timer"].content)[
        "OnCalendar"] == ["*-*-* 03:30:00"]  # fmt: skip

    env = _env(service.content)
    assert env["BORG_REPO"] == "ssh://borg@192.168.1.100/var/lib/borgbackup/laptop1"  # internet host
    assert env["BORG_PASSCOMMAND"] == f"cat {PASS}"
    assert shlex.split(env["BORG_RSH"]) == [
        "ssh", "-i", KEY, "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
        "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/etc/borgbackup/known_hosts",
    ]  # fmt: skip
    host_key = " ".join(_pub(clan, "backup-server", "openssh", "ssh.id_ed25519.pub").split()[:2])
    assert cfg.files["/etc/borgbackup/known_hosts"].content == f"192.168.1.100 {host_key}\n"

    plain = _env(cfg.units["borgbackup-job-plain-server.service"].content)
    assert plain["BORG_REPO"] == "ssh://borg@backup.example.org/srv/borg/laptop1"
    assert "StrictHostKeyChecking=accept-new" in plain["BORG_RSH"]  # no sshd service: no pinned key
    external = _env(cfg.units["borgbackup-job-storagebox.service"].content)
    assert external["BORG_REPO"] == "u1@u1.example.net:./borg"
    assert set(cfg.secrets) >= {KEY, PASS}


def test_bad_settings_are_reported(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        make_clan(CLAN.replace('["/var/lib/data"]', '["relative/path"]')).resolved  # noqa: B018
    assert err.value.problems[0].path.startswith("instances.borgbackup.roles.client")
    assert "'relative/path' is not an absolute path" in err.value.problems[0].message


def _files(cfg: Any) -> dict[str, bytes]:
    return {path: spec.content.encode() for path, spec in cfg.files.items()}


def test_backups_run_with_real_borg_and_stay_in_their_repository(
    clan: Clan, isolated: Isolated, tmp_path: Path
) -> None:
    assert shutil.which("borg") is not None, "borg is needed: apt-get install borgbackup"
    server = clan.evaluator.config("backup-server")
    forced = {
        line.rsplit(" ", 1)[1].removeprefix("borgbackup@"): line.split('"')[1]
        for line in server.users["borg"].authorized_keys
    }
    secrets: dict[str, bytes] = {}
    scripts = []
    for client in ("laptop1", "laptop2"):
        cfg = clan.evaluator.config(client)
        env = _env(cfg.units["borgbackup-job-backup-server.service"].content)
        job = cfg.units["borgbackup-job-backup-server.service"].content
        exec_start = _unit(job)["ExecStart"][0]
        # stand-in for `ssh borg@server`: sshd would run the forced command of the client's key
        rsh = tmp_path / f"ssh-{client}"
        rsh.write_text(f"#!/bin/sh\nexec {forced[client]}\n")
        rsh.chmod(0o755)
        exports = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items() if k != "BORG_RSH")
        scripts.append((client, f"env {exports} BORG_RSH={rsh} BORG_HOSTNAME_IS_UNIQUE=yes", exec_start))
        secrets |= _files(cfg)
        secrets[PASS.replace("borgbackup.repokey", f"{client}.repokey")] = decrypt_secret(
            clan, client, "borgbackup", "borgbackup.repokey"
        )
    laptop1_env, laptop2_env = scripts[0][1], scripts[1][1]
    script = f"""
useradd --system --user-group borg
{server.hooks["borgbackup-repos-borgbackup"].script}
mkdir -p /var/lib/data && echo precious > /var/lib/data/file && echo junk > /var/lib/data/scratch.tmp
cp {PASS.replace("borgbackup.repokey", "laptop1.repokey")} {PASS}
{laptop1_env} {scripts[0][2]}
sleep 1
{laptop1_env} {scripts[0][2]}
echo ---
names=$({laptop1_env} borg list --short)
echo "$names"
echo ---
mkdir -p /restore && cd /restore && {laptop1_env} borg extract "::$(echo "$names" | tail -n 1)"
find /restore -type f | sort
echo ---
cp {PASS.replace("borgbackup.repokey", "laptop2.repokey")} {PASS}
{laptop2_env} {scripts[1][2]}
echo ---
{laptop2_env.replace("/borgbackup/laptop2", "/borgbackup/laptop1")} borg list --short 2>&1 || echo refused
"""
    done = isolated(script, files=secrets)
    first, archives, restored, second, denied = done.stdout.split("---\n")
    assert "initialising ssh://borg@192.168.1.100/var/lib/borgbackup/laptop1" in first
    assert first.count("initialising") == 1  # the second run finds the repository
    names = archives.split()
    assert len(names) == 2 and all(n.startswith(f"{socket.gethostname()}-") for n in names)
    assert restored.split() == ["/restore/var/lib/data/file"]  # *.tmp excluded
    assert "initialising ssh://borg@192.168.1.100/var/lib/borgbackup/laptop2" in second
    assert denied.splitlines() == ["Repository path not allowed: /var/lib/borgbackup/laptop1", "refused"]


def test_provider_lists_and_restores_state_folders_with_real_borg(
    clan: Clan, isolated: Isolated, tmp_path: Path
) -> None:
    """The job backs up `directories` and every declared state folder; the provider restores one state's."""
    server = clan.evaluator.config("backup-server")
    forced = next(k.split('"')[1] for k in server.users["borg"].authorized_keys if k.endswith("@laptop2"))
    rsh = tmp_path / "ssh-laptop2"
    rsh.write_text(f"#!/bin/sh\nexec {forced}\n")
    rsh.chmod(0o755)
    cfg = clan.evaluator.config("laptop2")
    files = _files(cfg)
    wrapper = "/etc/borgbackup/borg-job-backup-server"
    files[wrapper] = b"".join(
        f"export BORG_RSH={rsh}\n".encode() if line.startswith(b"export BORG_RSH=") else line
        for line in files[wrapper].splitlines(keepends=True)
    )
    # two states, as services declare them (one folder also in `directories`: backed up once)
    files |= _files(MachineConfig().state("data", ["/var/lib/data"]).state("other", ["/srv/other"]))
    files[PASS] = decrypt_secret(clan, "laptop2", "borgbackup", "borgbackup.repokey")
    provider = "/etc/pyclan/backups/borgbackup"
    script = f"""set -e
useradd --system --user-group borg
{server.hooks["borgbackup-repos-borgbackup"].script}
chmod 0755 {wrapper} {provider}/*
mkdir -p /var/lib/data/sub /srv/other
echo precious > /var/lib/data/sub/file && echo other > /srv/other/file
sed '/^exec /d' {wrapper} > /tmp/job-env
(. /tmp/job-env && BORG_HOSTNAME_IS_UNIQUE=yes sh /etc/borgbackup/job-borgbackup.sh)
echo ---
{provider}/list
echo ---
rm -rf /var/lib/data/sub /srv/other/file && echo after > /srv/other/new && echo junk > /var/lib/data/junk
NAME="$({provider}/list | tail -n 1)" FOLDERS=/var/lib/data {provider}/restore
find /var/lib/data /srv/other -type f | sort
"""
    done = isolated(script, files=files)
    created, listed, restored = done.stdout.split("---\n")
    assert "initialising ssh://borg@192.168.1.100/var/lib/borgbackup/laptop2" in created
    [name] = listed.split()
    assert name.startswith(f"backup-server::{socket.gethostname()}-")
    assert restored.splitlines() == [
        "borgbackup: restoring /var/lib/data",
        "/srv/other/new",  # the other state is untouched
        "/var/lib/data/sub/file",  # back, and what was made after the backup is gone
    ]
