"""`pyclan ssh`, host-key checking and `machines install`, against real sshd on local hosts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_support import (
    DeployClan,
    LocalHosts,
    SshRun,
    make_deploy_clan,
    read_files,
    started_hosts_fixture,  # noqa: F401 - provides the `started_hosts` fixture
)

from pyclan.deploy.shell import openssh_argv
from pyclan.deploy.targets import resolve_target
from pyclan.deploy.transport import HostKeyCheck
from pyclan.hosts import control as hosts

pytestmark = pytest.mark.hosts


@pytest.fixture
def clan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DeployClan:
    """A clan, and a HOME whose ssh key the local hosts accept (but no known_hosts yet)."""
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYCLAN_AGE_KEY_FILE", str(tmp_path / "age.key"))
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(hosts.ensure_client_key(), home / ".ssh" / "id_ed25519")  # before any host is up
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return make_deploy_clan(tmp_path / "clan")


def test_ssh_runs_a_command_with_its_exit_status(started_hosts: LocalHosts, clan: DeployClan) -> None:
    (host,) = started_hosts(["dp-ssh"])
    clan.set({"dp-ssh": {}})
    proc = clan.cli("ssh", "dp-ssh", "-c", "hostname; echo oops >&2; exit 7")
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "dp-ssh\n", "oops\n")
    ok = clan.cli("ssh", "dp-ssh", "-c", "cat", "/etc/hostname")
    assert (ok.returncode, ok.stdout) == (0, "dp-ssh\n")
    # the interactive form hands over to OpenSSH with the same target and strict checking
    target = resolve_target(clan.open(), "dp-ssh")
    argv = openssh_argv(target, HostKeyCheck.STRICT, ["echo", "via openssh"])
    assert "StrictHostKeyChecking=yes" in argv and f"root@{host.address}" in argv
    run = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert (run.returncode, run.stdout) == (0, "via openssh\n"), run.stderr
    missing = clan.cli("ssh", "nowhere", "-c", "true")
    assert missing.returncode == 1 and "no machine named 'nowhere'" in missing.stderr


def test_host_key_checking_strict_tofu_and_changed(
    started_hosts: LocalHosts, ssh_run: SshRun, clan: DeployClan, tmp_path: Path
) -> None:
    host, other = started_hosts(["dp-hk", "dp-hk2"])
    # a machine that is not itself a local host (those are reached with pyclan's own key and
    # known_hosts, see test_networks): the host key checks of an ordinary remote host apply
    clan.set({"hk-box": {"files": {"/etc/hk": "hk\n"}}})
    target = f"root@{host.address}"
    known = tmp_path / "home" / ".ssh" / "known_hosts"

    strict = clan.cli("machines", "update", "hk-box", "--target-host", target, "--json")
    assert strict.returncode == 1
    [report] = json.loads(strict.stdout)
    assert f"the host key of {host.address}" in report["error"] and "is not in" in report["error"]
    assert "host key checking is strict" in report["error"] and "--host-key-check tofu" in report["hint"]
    assert read_files(ssh_run, host, ["/etc/hk"]) == {"/etc/hk": None}

    tofu = clan.cli("machines", "update", "hk-box", "--target-host", target, "--host-key-check", "tofu", "--json")
    assert tofu.returncode == 0, tofu.stdout + tofu.stderr
    assert known.read_text().split() == [host.address, *host.host_key.split()]
    assert read_files(ssh_run, host, ["/etc/hk"]) == {"/etc/hk": "hk\n"}
    again = clan.cli("ssh", "hk-box", "--target-host", target, "-c", "cat /etc/hk")  # strict, now known
    assert (again.returncode, again.stdout) == (0, "hk\n")

    # another machine answering at a known address: refused, with what to do
    known.write_text(f"{host.address} {other.host_key}\n")
    changed = clan.cli("ssh", "hk-box", "--target-host", target, "--host-key-check", "tofu", "-c", "true")
    assert changed.returncode == 1
    assert f"the host key of {host.address} has changed" in changed.stderr
    assert "ssh-keygen -R" in changed.stderr
    none = clan.cli("ssh", "hk-box", "--target-host", target, "--host-key-check", "none", "-c", "echo unchecked")
    assert (none.returncode, none.stdout) == (0, "unchecked\n")


def test_install_sets_up_a_fresh_host(started_hosts: LocalHosts, ssh_run: SshRun, clan: DeployClan) -> None:
    (host,) = started_hosts(["dp-install"])
    clan.set({"dp-install": {"files": {"/etc/installed": "yes\n"}, "users": {"inst": []}}})
    proc = clan.cli("machines", "install", "dp-install", "--target-host", f"root@{host.address}", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [report] = json.loads(proc.stdout)
    assert report["changed"] and report["generation"] == 1 and report["error"] is None
    assert read_files(ssh_run, host, ["/etc/installed"]) == {"/etc/installed": "yes\n"}
    listing = json.loads(clan.cli("machines", "generations", "dp-install", "--json", check=True).stdout)
    assert [(g["generation"], g["current"]) for g in listing] == [(0, False), (1, True)]
    # generation 0 is the host before pyclan: rolling back to it removes everything pyclan made
    back = clan.cli("machines", "rollback", "dp-install", "--to", "0")
    assert back.returncode == 0 and "switched to generation 0" in back.stdout, back.stderr
    assert read_files(ssh_run, host, ["/etc/installed"]) == {"/etc/installed": None}
    assert ssh_run(host, "id inst", check=False).returncode != 0


def test_ssh_config_user_with_sudo_and_proxyjump(
    started_hosts: LocalHosts, ssh_run: SshRun, clan: DeployClan, tmp_path: Path
) -> None:
    host, jump = started_hosts(["dp-cfg", "dp-jump"])
    home = tmp_path / "home"
    key = home / ".ssh" / "deploy_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ssh_run(host, f"""
        useradd -m -s /bin/sh deployer
        install -d -m 700 -o deployer -g deployer /home/deployer/.ssh
        echo '{key.with_suffix(".pub").read_text().strip()}' > /home/deployer/.ssh/authorized_keys
        chown deployer:deployer /home/deployer/.ssh/authorized_keys
        echo 'deployer ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deployer
    """)
    (home / ".ssh" / "config").write_text(
        f"Host target-alias\n  HostName {host.address}\n  User deployer\n  IdentityFile {key}\n"
        "  ProxyJump jump-alias\n"
        f"Host jump-alias\n  HostName {jump.address}\n  User root\n  IdentityFile {home / '.ssh' / 'id_ed25519'}\n"
    )
    (home / ".ssh" / "known_hosts").write_text(f"{host.address} {host.host_key}\n{jump.address} {jump.host_key}\n")
    clan.set({"dp-cfg": {"files": {"/etc/via-config": "hello\n"}}})

    proc = clan.cli("machines", "update", "dp-cfg", "--target-host", "target-alias", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [report] = json.loads(proc.stdout)
    assert report["changed"] and report["target"] == "target-alias"
    assert read_files(ssh_run, host, ["/etc/via-config"]) == {"/etc/via-config": "hello\n"}
    logins = ssh_run(host, "journalctl -u ssh --no-pager | grep 'Accepted publickey for deployer'").stdout
    assert f"from {jump.address}" in logins  # it came through the jump host
    out = clan.cli("ssh", "dp-cfg", "--target-host", "target-alias", "-c", "id -un; sudo -n id -un")
    assert (out.returncode, out.stdout) == (0, "deployer\nroot\n"), out.stderr
    ssh_run(host, "rm /etc/sudoers.d/deployer")
    denied = clan.cli("machines", "update", "dp-cfg", "--target-host", "target-alias", "--json")
    [failed] = json.loads(denied.stdout)
    assert denied.returncode == 1 and "cannot run commands as root without a password" in failed["error"]
