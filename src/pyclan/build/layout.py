"""Where deploy keeps things: on the target host, and in the controller's build cache.

One module so that the activation script, the remote helpers and the tests agree on every
path. The host layout (all below `HOST_ROOT`):

    objects/<sha256>        uploaded content, once per content (root-only)
    generations/<n>/        one per activation: id, manifest.json, activate.sh, *.list,
                            tree/ (the files, with owner and mode), secrets/ (root-only)
    current -> generations/<n>      switched with one atomic rename
    static  -> current/tree         managed paths are symlinks into here
    secrets -> current/secrets      so /var/lib/pyclan/secrets/<gen>/<file> follows `current`
    state/                  what pyclan created: paths, users, groups, packages, units
    journal                 present while an activation is unfinished
"""

from __future__ import annotations

import os
from pathlib import Path

from pyclan.vars.view import SECRETS_DIR_ON_HOST

HOST_ROOT = "/var/lib/pyclan"
STATIC = f"{HOST_ROOT}/static"
SECRETS = SECRETS_DIR_ON_HOST
UNIT_DIR = "/etc/systemd/system"
KEEP_GENERATIONS = 10

# Files of a generation folder that the code refers to by name.
MANIFEST = "manifest.json"
SCRIPT = "activate.sh"


def cache_dir() -> Path:
    """`$PYCLAN_CACHE_DIR`, else `$XDG_CACHE_HOME/pyclan`, else `~/.cache/pyclan`."""
    explicit = os.environ.get("PYCLAN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pyclan"


def builds_dir() -> Path:
    return cache_dir() / "builds"
