"""Enablement of systemd units as plain symlinks, computed at build time.

`systemctl enable` resolves symlinks and would point `*.wants/` links straight into one
generation's folder; instead the build reads the unit's `[Install]` section and the links
become part of the generation (as NixOS does), so enabling and disabling switch atomically
with everything else and need no `systemctl` call.
"""

from __future__ import annotations

from pyclan.build.layout import UNIT_DIR

_LINK_DIRS = {"WantedBy": "wants", "RequiredBy": "requires", "UpheldBy": "upholds"}


def install_section(content: str) -> dict[str, list[str]]:
    """The `[Install]` keys of a unit file, each with its space-separated values in order."""
    section: str | None = None
    out: dict[str, list[str]] = {}
    pending = ""
    for raw in content.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section != "Install" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if not value.strip():
            out.pop(key, None)  # an empty assignment resets the list, as in systemd
            continue
        out.setdefault(key, []).extend(value.split())
    return out


def enablement_links(name: str, content: str) -> dict[str, str]:
    """Link path → link target that `systemctl enable NAME` would create.

    A template unit (`foo@.service`) is enabled through its `DefaultInstance`, if any.
    """
    install = install_section(content)
    link_name = name
    if "@." in name:
        default = install.get("DefaultInstance", [])
        if not default:
            return {}
        prefix, _, suffix = name.partition("@.")
        link_name = f"{prefix}@{default[-1]}.{suffix}"
    target = f"{UNIT_DIR}/{name}"
    links: dict[str, str] = {}
    for key, kind in _LINK_DIRS.items():
        for unit in install.get(key, []):
            links[f"{UNIT_DIR}/{unit}.{kind}/{link_name}"] = target
    for alias in install.get("Alias", []):
        if alias != name:
            links[f"{UNIT_DIR}/{alias}"] = target
    return links
