"""Clan services that pyclan cannot provide on Debian 12, and why.

The registry consults this table when the bundled library lacks a name, so an inventory written
for Clan that uses one of them gets "not available in pyclan on Debian: <reason>" (a known gap)
instead of "unknown module" (which reads like a typo). The file name starts with `_` so the
library folder does not take it for a service module.
"""

from __future__ import annotations

UNAVAILABLE: dict[str, str] = {
    "coredns": (
        "Clan moved it out of clan-core into the clan-community flake, and Debian 12 does not package CoreDNS"
    ),
    "data-mesher": "data-mesher is a Nix-only daemon that Debian 12 does not package",
    "dm-dns": "it publishes DNS zones through data-mesher, which Debian 12 does not package",
    "garage": "Debian 12 does not package the Garage object store",
    "importer": "it imports NixOS modules into machines; Debian hosts have no NixOS module system",
    "installer": "it turns machines into NixOS installer images; pyclan deploys to installed Debian hosts",
    "matrix-synapse": (
        "Debian 12 does not package matrix-synapse (only matrix.org's own apt repository has it), and Clan's "
        "service relies on NixOS's PostgreSQL and nginx modules"
    ),
    "mycelium": "Debian 12 does not package the mycelium overlay network",
    "ncps": "it is a Nix binary-cache proxy; Debian hosts have no Nix store to serve",
    "p2p-ssh-iroh": "Debian 12 does not package iroh's dumbpipe, which the service runs ssh over",
    "trusted-nix-caches": "it configures Nix substituters; Debian hosts have no Nix",
}


def unavailable_reason(name: str) -> str | None:
    """Why the Clan service `name` is not in pyclan on Debian, or None if it is not a known gap."""
    return UNAVAILABLE.get(name.replace("_", "-"))
