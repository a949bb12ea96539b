"""emergency-access on a local host: root is unlocked with the generated password, as sulogin needs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from catalogue_hosts import Deployed, deploy_service
from deploy_support import LocalHosts

from pyclan.hosts import control as hosts
from pyclan.vars.api import get

pytestmark = pytest.mark.hosts

MACHINES = ["cat-ea1"]
TOML = """
[meta]
name = "ea-host"
[machines.cat-ea1]
[instances.emergency-access]
roles.default.machines.cat-ea1 = {}
"""

# crypt(3) of the host's libc via perl-base (the rootfs has no python): the password, then a wrong one
VERIFY = """'my $h = (getpwnam("root"))[1]; print crypt($ENV{PW}, $h) eq $h ? "ok" : "no", " ",
  crypt("wrong", $h) eq $h ? "ok" : "no", "\\n"'"""


@pytest.fixture(scope="module")
def deployed(local_hosts: LocalHosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with pytest.MonkeyPatch.context() as mp:
        result = deploy_service(local_hosts, tmp_path_factory.mktemp("ea"), mp, MACHINES, TOML)
        try:
            yield result
        finally:
            hosts.down(MACHINES)


def test_root_has_the_generated_password_that_the_emergency_shell_asks_for(deployed: Deployed) -> None:
    host = deployed.hosts["cat-ea1"]
    clan = deployed.clan.open()
    _, password = get(clan, "cat-ea1", "emergency-access/password")
    _, hashed = get(clan, "cat-ea1", "emergency-access/password-hash")
    facts = deployed.run(host, "getent shadow root | cut -d: -f2; passwd -S root | cut -d' ' -f2").stdout.split()
    assert facts == [hashed.decode().strip(), "P"]  # P: a usable password (not L, locked)
    # the host's own crypt(3) (perl-base calls it) accepts the password (what sulogin and su do with it)
    check = deployed.run(host, f"PW='{password.decode()}' perl -e {VERIFY}").stdout.split()
    assert check == ["ok", "no"]
    # the shells that ask for it when booting fails
    units = deployed.run(host, "systemctl cat emergency.service rescue.service | grep '^ExecStart='").stdout
    assert units.count("systemd-sulogin-shell") == 2
