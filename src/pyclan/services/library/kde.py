"""kde: the KDE Plasma desktop with SDDM as the display manager (Clan's `kde`), with Debian 12's packages.

Clan enables Plasma 6 and SDDM on Wayland and preselects the `plasma` session. Debian 12 has
Plasma 5.27 and SDDM 0.19: the service installs the Plasma desktop (`kde-plasma-desktop`), its
Wayland session (`plasma-workspace-wayland`), SDDM with Debian's Breeze theme, and makes SDDM the
display manager the way Debian's own packages do (`/etc/X11/default-display-manager`, the
`display-manager.service` link) with `graphical.target` as the default boot target. SDDM 0.19
cannot run its greeter on Wayland (0.20 can), so the greeter runs on X11 and the session it
preselects is Plasma on Wayland, as in Clan. Like Clan's, the service has no settings.
"""

from __future__ import annotations

from pyclan.services import InstanceContext, MachineConfig, NoSettings, Service
from pyclan.services.library._common import SYSTEMD_BOOTED

PACKAGES = (
    "kde-plasma-desktop",        # Plasma's desktop, workspace and base apps (Debian's minimal Plasma)
    "plasma-workspace-wayland",  # the Plasma (Wayland) session
    "sddm",
    "sddm-theme-debian-breeze",  # the greeter theme that matches Plasma
    "libpam-systemd",            # logind sessions for the graphical login (a Recommends of sddm)
)  # fmt: skip
SDDM_CONF = "/etc/sddm.conf.d/10-pyclan-kde.conf"
SESSION = "/usr/share/wayland-sessions/plasmawayland.desktop"
SDDM_UNIT = "/lib/systemd/system/sddm.service"

service = Service(
    "kde",
    description="Sets up a graphical desktop environment",
    readme=(
        "KDE Plasma (Debian 12: Plasma 5.27) with SDDM as the display manager, the Plasma Wayland session "
        "preselected, and graphical.target as the default boot target. No settings, as in Clan."
    ),
    categories=["Desktop"],
)

SDDM_CONFIG = """# Managed by pyclan (kde service).
[General]
# SDDM 0.19 runs its greeter on X11 only; the session it starts is Plasma on Wayland.
DisplayServer=x11

[Theme]
Current=debian-breeze
"""

# SDDM keeps the last chosen session in its state file; a first one preselects Plasma (Wayland).
DISPLAY_MANAGER_HOOK = f"""set -eu
if [ ! -e {SDDM_UNIT} ]; then
  echo "kde: sddm is not installed ({SDDM_UNIT} is missing)" >&2
  exit 1
fi
mkdir -p /etc/X11 /etc/systemd/system
[ "$(cat /etc/X11/default-display-manager 2>/dev/null || true)" = /usr/bin/sddm ] \\
  || echo /usr/bin/sddm > /etc/X11/default-display-manager
[ "$(readlink /etc/systemd/system/display-manager.service 2>/dev/null || true)" = {SDDM_UNIT} ] \\
  || ln -sfn {SDDM_UNIT} /etc/systemd/system/display-manager.service
[ "$(readlink /etc/systemd/system/default.target 2>/dev/null || true)" = /lib/systemd/system/graphical.target ] \\
  || ln -sfn /lib/systemd/system/graphical.target /etc/systemd/system/default.target
if [ ! -e /var/lib/sddm/state.conf ]; then
  mkdir -p /var/lib/sddm
  printf '[Last]\\nSession={SESSION}\\n' > /var/lib/sddm/state.conf
  if getent passwd sddm >/dev/null; then chown sddm:sddm /var/lib/sddm/state.conf; fi
fi
if {SYSTEMD_BOOTED}; then
  systemctl daemon-reload
  # Start the login screen now only where there is a console to show it on.
  if [ -c /dev/tty1 ] && ! systemctl is-active --quiet display-manager.service; then
    systemctl start display-manager.service || echo "kde: the display manager did not start" >&2
  fi
fi
"""


@service.role(
    "default",
    description="KDE/Plasma (wayland): Full-featured desktop environment with modern Qt-based interface",
)
def default(ctx: InstanceContext[NoSettings]) -> MachineConfig:
    return (
        MachineConfig()
        .package(*PACKAGES)
        .file(SDDM_CONF, SDDM_CONFIG)
        .hook("kde-display-manager", DISPLAY_MANAGER_HOOK)
    )
