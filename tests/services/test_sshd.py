"""sshd: config checked by the real sshd, clan host keys, known hosts without trust-on-first-use."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library._common import openssh_ed25519_keypair

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

SSHD = Path("/usr/sbin/sshd")

CLAN = """
[meta]
name = "s"
domain = "home.arpa"
[machines.backup-server]
tags = ["server"]
[machines.sally-laptop]
[machines.fred-laptop]
[instances.internet]
roles.default.machines.backup-server.settings.host = "192.168.1.100"
[instances.sshd]
roles.server.machines.backup-server = {}
roles.server.machines.sally-laptop = {}
roles.client.machines.fred-laptop = {}
"""


def _files(cfg: Any) -> dict[str, bytes]:
    return {path: spec.content.encode() for path, spec in cfg.files.items()}


@pytest.fixture(scope="module", autouse=True)
def _openssh_server() -> None:
    """The tests run the real sshd; install Debian's openssh-server if this machine lacks it."""
    if not SSHD.exists():
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "openssh-server"], check=True,
                       env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert SSHD.exists()


def test_host_key_generator_makes_a_matching_openssh_pair(make_clan: MakeClan, generate_vars: Callable[..., Any],
                                                          tmp_path: Path) -> None:
    clan = make_clan(CLAN)
    gen = clan.evaluator.generators()["backup-server"]["openssh"].generator
    assert {f: v.secret for f, v in gen.files.items()} == {"ssh.id_ed25519": True, "ssh.id_ed25519.pub": False}
    made = generate_vars(clan)
    private = tmp_path / "key"
    private.write_bytes(made.secret("backup-server", "openssh", "ssh.id_ed25519"))
    private.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True, text=True, check=True)
    public = (clan.dir / "vars/per-machine/backup-server/openssh/ssh.id_ed25519.pub/value").read_text()
    assert derived.stdout.split()[:2] == public.split()[:2]
    assert "fred-laptop" not in {m for (m, g, _f) in made.secrets if g == "openssh"}  # clients have no host key


def test_server_config_passes_sshd_t(make_clan: MakeClan, generate_vars: Callable[..., Any],
                                     isolated: Isolated) -> None:
    clan = make_clan(CLAN.replace("roles.server.machines.sally-laptop = {}\n", "") + """
[instances.sshd.roles.server.machines.sally-laptop.settings]
port = 2222
passwordAuthentication = true
hostKeys.rsa.enable = true
settings.PermitRootLogin = "prohibit-password"
settings.AllowUsers = ["root", "sally"]
settings.X11Forwarding = false
settings.MaxAuthTries = 4
""")
    made = generate_vars(clan)
    cfg = clan.evaluator.config("sally-laptop")
    conf = cfg.files["/etc/ssh/sshd_config.d/00-clan-sshd.conf"].content
    lines = [line for line in conf.splitlines() if not line.startswith("#")]
    assert lines == [
        "Port 2222",
        "PasswordAuthentication yes",
        "HostKey /var/lib/pyclan/secrets/openssh/ssh.id_ed25519",
        "HostKey /var/lib/pyclan/secrets/openssh-rsa/ssh.id_rsa",
        "HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub",
        "AllowUsers root sally",
        "MaxAuthTries 4",
        "PermitRootLogin prohibit-password",
        "X11Forwarding no",
    ]
    assert "openssh-server" in cfg.packages
    # the real sshd reads Debian's sshd_config, which includes ours, and prints the effective settings
    done = isolated(f"mkdir -p /run/sshd && {SSHD} -T", files=_files(cfg) | made.host_files("sally-laptop"))
    effective = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert effective["port"] == "2222" and effective["passwordauthentication"] == "yes"
    assert effective["permitrootlogin"] == "without-password"
    assert effective["maxauthtries"] == "4"
    assert "/var/lib/pyclan/secrets/openssh-rsa/ssh.id_rsa" in done.stdout
    assert effective["authorizedkeysfile"].split() == [
        ".ssh/authorized_keys", ".ssh/authorized_keys2", "/etc/ssh/authorized_keys.d/%u",
        "/etc/ssh/authorized_keys.sshd.d/%u",
    ]


def test_reload_hook_checks_then_reloads_only_on_change(make_clan: MakeClan, generate_vars: Callable[..., Any],
                                                        isolated: Isolated) -> None:
    clan = make_clan(CLAN)
    made = generate_vars(clan)
    cfg = clan.evaluator.config("backup-server")
    hook = cfg.hooks["sshd-reload"].script
    script = f"{hook}\ncat /var/lib/pyclan/hook-state/sshd\n{hook}\ncat /var/lib/pyclan/hook-state/sshd\n"
    done = isolated(script, files=_files(cfg) | made.host_files("backup-server"))
    stamps = done.stdout.split()
    assert len(stamps) == 2 and stamps[0] == stamps[1] and len(stamps[0]) == 64

    broken = {**_files(cfg), "/etc/ssh/sshd_config.d/00-clan-sshd.conf": b"Port notanumber\n"}
    failed = isolated(hook, files=broken | made.host_files("backup-server"), check=False)
    assert failed.returncode == 1
    assert "does not pass sshd -t" in failed.stderr


def test_known_hosts_list_every_server_under_every_name(make_clan: MakeClan, generate_vars: Callable[..., Any]) -> None:
    clan = make_clan(CLAN)
    assert "/etc/ssh/ssh_known_hosts" not in clan.evaluator.config("fred-laptop").files  # nothing generated yet
    generate_vars(clan)
    key = {m: (clan.dir / f"vars/per-machine/{m}/openssh/ssh.id_ed25519.pub/value").read_text().strip()
           for m in ("backup-server", "sally-laptop")}
    ca = " ".join((clan.dir / "vars/shared/openssh-ca/id_ed25519.pub/value").read_text().split()[:2])
    fred = clan.evaluator.config("fred-laptop").files["/etc/ssh/ssh_known_hosts"].content
    entries = [line for line in fred.splitlines() if not line.startswith("#")]
    assert entries == [
        f"backup-server,backup-server.home.arpa,192.168.1.100 {key['backup-server']}",
        f"sally-laptop,sally-laptop.home.arpa {key['sally-laptop']}",
        f"@cert-authority *.home.arpa {ca}",
    ]
    sally = clan.evaluator.config("sally-laptop").files["/etc/ssh/ssh_known_hosts"].content
    assert f"sally-laptop,sally-laptop.home.arpa,localhost {key['sally-laptop']}" in sally
    assert "openssh-client" in clan.evaluator.config("fred-laptop").packages


def test_login_with_strict_host_key_checking_uses_only_the_clan_known_hosts(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated, tmp_path: Path
) -> None:
    client_private, client_public = openssh_ed25519_keypair("test@client")
    admin = f'roles.server.machines.backup-server.settings.authorizedKeys.admin = "{client_public.strip()}"'
    clan = make_clan(CLAN.replace("roles.server.machines.backup-server = {}", admin))
    made = generate_vars(clan)
    server = clan.evaluator.config("backup-server")
    assert server.files["/etc/ssh/authorized_keys.sshd.d/root"].content.splitlines()[1:] == [client_public.strip()]
    known = clan.evaluator.config("fred-laptop").files["/etc/ssh/ssh_known_hosts"].content.encode()
    files = _files(server) | made.host_files("backup-server") | {
        "/etc/ssh/ssh_known_hosts": known,
        "/root/client-key": client_private.encode(),
    }  # no /root/.ssh/authorized_keys: root's key comes from `authorizedKeys`
    ssh = ("ssh -F none -i /root/client-key -o StrictHostKeyChecking=yes -o CheckHostIP=no -o BatchMode=yes "
           "-o UserKnownHostsFile=/dev/null -o HostName=127.0.0.1")
    script = f"""
mkdir -p /run/sshd
{SSHD} -D -e -o ListenAddress=127.0.0.1 2>/root/sshd.log & pid=$!
for i in $(seq 50); do {ssh} -o HostKeyAlias=backup-server.home.arpa root@x true 2>/dev/null && break; sleep 0.1; done
{ssh} -o HostKeyAlias=backup-server.home.arpa root@x 'echo trusted-by-domain-name'
{ssh} -o HostKeyAlias=192.168.1.100 root@x 'echo trusted-by-internet-host'
if {ssh} -o HostKeyAlias=sally-laptop root@x true 2>/root/err; then echo WRONG-KEY-ACCEPTED; fi
grep -c 'Host key verification failed' /root/err
kill $pid
"""
    done = isolated(script, files=files, net=True)
    assert done.stdout.split() == ["trusted-by-domain-name", "trusted-by-internet-host", "1"], done.stderr


def test_certificate_authority_signs_host_keys(make_clan: MakeClan, generate_vars: Callable[..., Any],
                                               isolated: Isolated, tmp_path: Path) -> None:
    clan = make_clan(CLAN + 'roles.server.settings.certificate.searchDomains = ["example.com"]\n'
                     'roles.client.settings.certificate.searchDomains = ["example.com"]\n')
    gens = clan.evaluator.generators()
    assert gens["fred-laptop"]["openssh-ca"].generator == gens["backup-server"]["openssh-ca"].generator
    cert_gen = gens["backup-server"]["openssh-cert"].generator
    assert cert_gen.dependencies == ("openssh", "openssh-ca")
    made = generate_vars(clan)
    cert = (clan.dir / "vars/per-machine/backup-server/openssh-cert/ssh.id_ed25519-cert.pub/value")
    listing = subprocess.run(["ssh-keygen", "-L", "-f", str(cert)], capture_output=True, text=True, check=True).stdout
    principals = listing.split("Principals:")[1].split("Critical Options:")[0].split()
    assert "host certificate" in listing and principals == ["backup-server.home.arpa", "backup-server.example.com"]

    server = clan.evaluator.config("backup-server")
    conf = server.files["/etc/ssh/sshd_config.d/00-clan-sshd.conf"].content
    assert "HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub" in conf
    isolated(f"mkdir -p /run/sshd && {SSHD} -t", files=_files(server) | made.host_files("backup-server"))
    ca = (clan.dir / "vars/shared/openssh-ca/id_ed25519.pub/value").read_text().split()
    fred = clan.evaluator.config("fred-laptop").files["/etc/ssh/ssh_known_hosts"].content
    assert f"@cert-authority *.home.arpa,*.example.com {ca[0]} {ca[1]}" in fred.splitlines()
    assert not any(s.generator == "openssh-ca" for s in server.secrets.values())  # the CA key stays with the admin
    assert f"@cert-authority *.home.arpa,*.example.com {ca[0]} {ca[1]}" in server.files[
        "/etc/ssh/ssh_known_hosts"].content.splitlines()  # servers trust the CA too, as in Clan


def test_certificates_are_on_by_default_and_can_be_turned_off(make_clan: MakeClan) -> None:
    """Clan's default: certificate.enable = true; with every server's off, clients do not trust a CA either."""
    gens = make_clan(CLAN).evaluator.generators()
    assert {"openssh", "openssh-ca", "openssh-cert"} <= set(gens["backup-server"])
    assert set(gens["fred-laptop"]) == {"openssh-ca"}
    assert gens["backup-server"]["openssh-cert"].generator.validation == {
        "name": "backup-server", "domains": {"home.arpa": "home.arpa"}}
    off = make_clan(CLAN + "roles.server.settings.certificate.enable = false\n")
    gens = off.evaluator.generators()
    assert set(gens["backup-server"]) == {"openssh"}
    assert "fred-laptop" not in gens or not gens["fred-laptop"]
    conf = off.evaluator.config("backup-server").files["/etc/ssh/sshd_config.d/00-clan-sshd.conf"].content
    assert "HostCertificate" not in conf


def test_key_generators_run_ssh_keygen_with_clan_names(make_clan: MakeClan, generate_vars: Callable[..., Any],
                                                       tmp_path: Path) -> None:
    clan = make_clan(CLAN + "roles.server.settings.generateRootKey = true\n"
                     "roles.server.settings.hostKeys.rsa.enable = true\n")
    made = generate_vars(clan)
    base = clan.dir / "vars/per-machine/backup-server"
    root_pub = (base / "sshd-root-key/id_ed25519.pub/value").read_text()
    assert root_pub.split()[0] == "ssh-ed25519" and root_pub.split()[2] == "root@backup-server"
    assert (base / "openssh-rsa/ssh.id_rsa.pub/value").read_text().startswith("ssh-rsa ")
    private = tmp_path / "rsa"
    private.write_bytes(made.secret("backup-server", "openssh-rsa", "ssh.id_rsa"))
    private.chmod(0o600)
    bits = subprocess.run(["ssh-keygen", "-l", "-f", str(private)], capture_output=True, text=True, check=True)
    assert bits.stdout.split()[0] == "4096"
    keys = clan.evaluator.config("backup-server").files["/etc/ssh/authorized_keys.sshd.d/root"].content
    assert " ".join(root_pub.split()[:2]) in keys  # the generated root key may log in as root


def test_a_client_trusts_a_fresh_server_by_its_certificate_alone(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated
) -> None:
    """No host key in known_hosts, only the CA line: a server whose key the client never saw is trusted
    under `<machine>.<domain>` (StrictHostKeyChecking=yes), and refused under a name outside the CA's domains."""
    client_private, client_public = openssh_ed25519_keypair("test@client")
    clan = make_clan(CLAN + f'roles.server.settings.authorizedKeys.admin = "{client_public.strip()}"\n')
    made = generate_vars(clan)
    server = clan.evaluator.config("backup-server")
    known = clan.evaluator.config("fred-laptop").files["/etc/ssh/ssh_known_hosts"].content
    ca_only = "".join(line + "\n" for line in known.splitlines() if line.startswith("@cert-authority"))
    assert ca_only.count("\n") == 1
    files = _files(server) | made.host_files("backup-server") | {
        "/etc/ssh/ssh_known_hosts": ca_only.encode(), "/root/client-key": client_private.encode()}
    ssh = ("ssh -F none -i /root/client-key -o StrictHostKeyChecking=yes -o CheckHostIP=no -o BatchMode=yes "
           "-o UserKnownHostsFile=/dev/null -o HostName=127.0.0.1")
    script = f"""
mkdir -p /run/sshd
{SSHD} -D -e -o ListenAddress=127.0.0.1 2>/root/sshd.log & pid=$!
for i in $(seq 50); do {ssh} -o HostKeyAlias=backup-server.home.arpa root@x true 2>/dev/null && break; sleep 0.1; done
{ssh} -o HostKeyAlias=backup-server.home.arpa root@x 'echo trusted-by-certificate'
if {ssh} -o HostKeyAlias=backup-server.elsewhere.org root@x true 2>/root/err; then echo OUTSIDE-DOMAIN-ACCEPTED; fi
grep -c 'Host key verification failed' /root/err
kill $pid
"""
    done = isolated(script, files=files, net=True)
    assert done.stdout.split() == ["trusted-by-certificate", "1"], done.stderr


@pytest.mark.parametrize(
    ("extra", "path_end", "text"),
    [
        ('{ Port = 2200 }', "settings.settings.Port", "use the setting `port`"),
        ('{ "Bad Name" = "x" }', "settings.settings.Bad Name", "not an sshd_config option"),
        ('{ Banner = "a\\nPermitRootLogin yes" }', "settings.settings.Banner", "single line"),
        ('{ Match = "User x" }', "settings.settings.Match", "Match blocks"),
    ],
)
def test_unsafe_extra_options_are_refused(make_clan: MakeClan, extra: str, path_end: str, text: str) -> None:
    clan = make_clan(CLAN + f"roles.server.settings.settings = {extra}\n")
    with pytest.raises(ClanError) as err:
        clan.evaluator.config("backup-server")
    problem = err.value.problems[0]
    assert problem.path.endswith(path_end)
    assert text in problem.message + (problem.hint or "")


@pytest.mark.parametrize(
    ("setting", "path_end", "text"),
    [
        ('roles.server.settings.authorizedKeys.admin = "ssh-ed25519 AAAA\\nssh-rsa BBBB"',
         "settings.authorizedKeys.admin", "pattern"),
        ('roles.client.settings.certificate.searchDomains = ["bad domain"]',
         "settings.certificate.searchDomains", "not a domain name"),
    ],
)
def test_bad_keys_and_domains_are_settings_errors(make_clan: MakeClan, setting: str, path_end: str, text: str) -> None:
    """Checked by the interface itself, so the engine reports them for every member with the exact path."""
    with pytest.raises(ClanError) as err:
        _ = make_clan(CLAN + setting + "\n").resolved
    problem = err.value.problems[0]
    assert problem.kind == "settings-type" and problem.path.endswith(path_end), problem
    assert text in problem.message
