"""Where local test hosts live: paths, bridge and address range, read from the environment.

Everything that names a kernel object (netns, veth, cgroup) is derived here, so that two
configurations with different bridges never touch each other's objects and parallel test
runs can share the machine.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from pyclan.errors import ClanError

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
BRIDGE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,10}$")
NET_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")

#: hosts get `<net>.<HOST_OFFSET + index>`; index 1..MAX_INDEX keeps the last octet <= 254
HOST_OFFSET = 10
MAX_INDEX = 244
PROXY_PORT = 3142
SUITE = "bookworm"


@dataclass(frozen=True)
class HostsConfig:
    """The settings one set of local hosts shares (one bridge, one state dir)."""

    state_dir: Path
    rootfs: Path
    bridge: str
    net: str
    apt_cache: Path

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> HostsConfig:
        """Read `PYCLAN_HOSTS_*` / `PYCLAN_ROOTFS`; defaults suit a single user of the machine."""
        e = dict(os.environ) if env is None else env
        cfg = cls(
            state_dir=Path(e.get("PYCLAN_HOSTS_DIR") or "/var/lib/pyclan/hosts"),
            rootfs=Path(e.get("PYCLAN_ROOTFS") or "/var/tmp/pyclan-rootfs-bookworm"),
            bridge=e.get("PYCLAN_HOSTS_BRIDGE") or "pcbr0",
            net=e.get("PYCLAN_HOSTS_NET") or "10.231.0",
            apt_cache=Path(e.get("PYCLAN_HOSTS_APT_CACHE") or "/var/tmp/pyclan-apt-cache"),
        )
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Reject values that would produce invalid link names or addresses."""
        if not BRIDGE_RE.match(self.bridge):
            raise ClanError.single(
                "deploy-error",
                "PYCLAN_HOSTS_BRIDGE",
                f"invalid bridge name {self.bridge!r}",
                hint="use a letter then up to 10 letters, digits or '_' (veth names add '-<index>' "
                "and Linux limits link names to 15 characters)",
            )
        m = NET_RE.match(self.net)
        if not m or any(int(o) > 255 for o in m.groups()):
            raise ClanError.single(
                "deploy-error",
                "PYCLAN_HOSTS_NET",
                f"invalid network prefix {self.net!r}",
                hint="give the first three octets of a /24, e.g. 10.231.0",
            )

    # --- addresses and kernel object names -------------------------------------------------
    @property
    def bridge_address(self) -> str:
        return f"{self.net}.1"

    @property
    def proxy_url(self) -> str:
        return f"http://{self.bridge_address}:{PROXY_PORT}"

    def address(self, index: int) -> str:
        return f"{self.net}.{HOST_OFFSET + index}"

    @property
    def netns_prefix(self) -> str:
        return f"pyclan-{self.bridge}-"

    def netns(self, name: str) -> str:
        return self.netns_prefix + name

    @property
    def veth_prefix(self) -> str:
        return f"{self.bridge}-"

    def veth(self, index: int) -> str:
        """Root end of the host's veth: from the index, as names are limited to 15 chars."""
        return f"{self.veth_prefix}{index}"

    @property
    def cgroup_rel(self) -> str:
        """Cgroup (relative to each hierarchy's mount) that holds this bridge's hosts."""
        return f"pyclan/{self.bridge}"

    # --- paths -----------------------------------------------------------------------------
    @property
    def hosts_dir(self) -> Path:
        return self.state_dir / "hosts"

    def state_file(self, name: str) -> Path:
        return self.hosts_dir / f"{name}.json"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def host_run_dir(self, name: str) -> Path:
        return self.run_dir / name

    @property
    def proxy_dir(self) -> Path:
        return self.state_dir / "apt-proxy"

    @property
    def client_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "lock"


def validate_name(name: str) -> None:
    """Machine names become hostnames and file names: at most 63 chars of `[a-z0-9-]`."""
    if not NAME_RE.match(name):
        raise ClanError.single(
            "deploy-error",
            name,
            f"invalid machine name {name!r} for a local host",
            hint="use 1-63 characters a-z, 0-9 and '-', not starting or ending with '-'",
        )
