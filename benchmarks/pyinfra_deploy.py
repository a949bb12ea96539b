"""pyinfra's side of `benchmarks/deploy_scale.py`: the bench clan's workload, as a pyinfra deploy.

The same work as the clan's `bench` service does on each host — 9 static files and one whose
content is the `version` (`--data version=N`), 2 packages, a user, an enabled and started
systemd unit — under names of its own (`/etc/benchinfra`, user and unit `benchinfra`), so that
pyclan's and pyinfra's runs on the same hosts never undo each other's work. The packages are the
same (both tools only make sure they are installed; they are in the hosts' rootfs).

    pyinfra INVENTORY benchmarks/pyinfra_deploy.py --data version=1 -y
"""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.operations import apt, files, server, systemd

PACKAGES = ["procps", "iputils-ping"]  # the same as the clan's; already in the hosts' rootfs
UNIT = (
    "[Unit]\nDescription=bench\n[Service]\nExecStart=/bin/sleep infinity\n"
    "[Install]\nWantedBy=multi-user.target\n"
)

for i in range(9):
    files.put(
        name=f"static file {i}",
        src=StringIO(f"machine {host.name}, file {i}\n" * 20),
        dest=f"/etc/benchinfra/static-{i}.conf",
        user="root", group="root", mode="0644",
    )  # fmt: skip
files.put(
    name="changing file",
    src=StringIO(f"version {host.data.get('version', '1')}\n"),
    dest="/etc/benchinfra/changing.conf",
    user="root", group="root", mode="0644",
)  # fmt: skip
apt.packages(name="packages", packages=PACKAGES)
server.user(name="user", user="benchinfra", shell="/bin/sh", groups=[], create_home=True)
unit = files.put(
    name="unit file",
    src=StringIO(UNIT),
    dest="/etc/systemd/system/benchinfra.service",
    user="root", group="root", mode="0644",
)  # fmt: skip
systemd.daemon_reload(name="daemon-reload", _if=unit.did_change)
systemd.service(name="unit", service="benchinfra.service", running=True, enabled=True)
