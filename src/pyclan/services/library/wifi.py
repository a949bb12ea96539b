"""wifi: pre-configured Wi-Fi networks through NetworkManager (Clan's `wifi`).

Each network (an attribute name such as `home`, not the SSID) gets a shared generator
`wifi.<name>` with the persisted prompts `network-name` (the SSID) and `password`. Both are
secrets, so the NetworkManager keyfile cannot be a plain config file: an activation hook
renders `/etc/NetworkManager/system-connections/<name>.nmconnection` (mode 0600) from the
secret files deploy placed on the host, removes keyfiles of networks that were dropped from
the instance, and reloads NetworkManager (its configuration too, when the pyclan conf changed:
the package starts NetworkManager before that conf may exist).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pyclan.errors import ClanError
from pyclan.services import Generator, InstanceContext, MachineConfig, MachineContext, Prompt, Service, VarFile
from pyclan.services.library._common import HOOK_STATE_DIR, SYSTEMD_BOOTED, PromptCopyRun, sh_quote, stable_uuid

CONNECTIONS_DIR = "/etc/NetworkManager/system-connections"
NM_CONF = "/etc/NetworkManager/conf.d/pyclan-wifi.conf"
NETWORK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

KeyMgmt = Literal["none", "ieee8021x", "owe", "wpa-psk", "sae", "wpa-eap", "wpa-eap-suite-b-192"]
_PSK_MODES = ("wpa-psk", "sae")
_EAP_MODES = ("ieee8021x", "wpa-eap", "wpa-eap-suite-b-192")

service = Service(
    "wifi",
    description="Pre-configure Wi-Fi networks to connect to",
    readme=(
        "NetworkManager profiles for the listed networks; SSID and password are prompted secrets "
        "(generator `wifi.<network>`), rendered into the keyfile on the host at activation."
    ),
    categories=["Network"],
)


class Network(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool = Field(default=True, description="Enable this Wi-Fi network")
    autoConnect: bool = Field(default=True, description="Automatically try to join this Wi-Fi network")
    keyMgmt: KeyMgmt = Field(
        default="wpa-psk",
        description=(
            'Key management: "none" (open), "ieee8021x" (dynamic WEP), "owe", "wpa-psk" (WPA2 + WPA3 '
            'personal), "sae" (WPA3 personal only), "wpa-eap" (WPA2 + WPA3 enterprise) or '
            '"wpa-eap-suite-b-192" (WPA3 enterprise only)'
        ),
    )


class Wifi(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    networks: dict[str, Network] = Field(
        default={},
        description=(
            "Wi-Fi networks to configure. Each attribute name is an internal identifier (not the SSID); "
            "SSID and password are asked for as secrets."
        ),
        examples=[{"home": {}, "guest": {"autoConnect": False}}],
    )


def generator_name(network: str) -> str:
    return f"wifi.{network}"


def _has_password(net: Network) -> bool:
    return net.keyMgmt != "none"


def _networks(ctx: InstanceContext[Wifi]) -> dict[str, Network]:
    base = f"instances.{ctx.instance_name}.roles.{ctx.role_name}.machines.{ctx.machine.name}.settings.networks"
    for name in ctx.settings.networks:
        if not NETWORK_NAME.match(name):
            raise ClanError.single(
                "settings-type", f"{base}.{name}",
                f"network name {name!r} is not usable as a file and generator name",
                hint="use letters, digits, '_', '-' and '.', e.g. `networks.home`; the SSID is asked for separately",
            )
    return {n: net for n, net in sorted(ctx.settings.networks.items()) if net.enable}


@service.role("default", interface=Wifi, description="Machines that get the Wi-Fi networks")
def default(ctx: InstanceContext[Wifi]) -> MachineConfig:
    networks = _networks(ctx)
    cfg = MachineConfig().package("network-manager")
    cfg.hook(f"wifi-{ctx.instance_name}", render_hook(ctx, networks))
    return cfg


@default.generators
def network_generators(ctx: InstanceContext[Wifi]) -> list[Generator]:
    gens = []
    for name, net in _networks(ctx).items():
        prompts = {"network-name": Prompt(description="name of the Wi-Fi network", type="line", persist=True)}
        if _has_password(net):
            prompts["password"] = Prompt(
                description=f"password of the Wi-Fi network '{name}'", type="hidden", persist=True
            )
        gens.append(
            Generator(
                name=generator_name(name),
                share=True,
                files={p: VarFile(secret=True) for p in prompts},
                prompts=prompts,
                run=PromptCopyRun(tuple(prompts)),
            )
        )
    return gens


@service.per_machine
def networkmanager_conf(ctx: MachineContext) -> MachineConfig:
    # NetworkManager manages Wi-Fi devices only, so installing it never takes over the wired link
    # a machine is deployed through; no automatic "Wired connection 1" profiles either.
    conf = (
        "# Managed by pyclan (wifi service)\n"
        "[main]\n"
        "no-auto-default=*\n"
        "\n"
        "[keyfile]\n"
        "unmanaged-devices=except:type:wifi\n"
    )
    return MachineConfig().file(NM_CONF, conf)


def _marker(instance: str) -> str:
    return f"# pyclan-wifi instance={instance}"


def _keyfile_template(instance: str, name: str, net: Network) -> str:
    """The keyfile with `$ssid` / `$psk` shell variables in place of the secrets."""
    lines = [
        _marker(instance),
        "[connection]",
        f"id={name}",
        f"uuid={stable_uuid('wifi', instance, name)}",
        "type=wifi",
        f"autoconnect={'true' if net.autoConnect else 'false'}",
        "",
        "[wifi]",
        "mode=infrastructure",
        "ssid=$ssid",
    ]
    if net.keyMgmt != "none":
        lines += ["", "[wifi-security]", f"key-mgmt={net.keyMgmt}"]
        if net.keyMgmt in _PSK_MODES:
            lines.append("psk=$psk")
        if net.keyMgmt in _EAP_MODES:
            lines += ["", "[802-1x]", "password=$psk"]
    lines += ["", "[ipv4]", "method=auto", "", "[ipv6]", "addr-gen-mode=default", "method=auto"]
    return "\n".join(lines) + "\n"


# Helpers of the hook. The SSID is written as a byte list (`ssid=104;111;109;101;`), which the
# keyfile format accepts for any SSID; the password is escaped for GKeyFile (\\, \s, \t).
_HOOK_PRELUDE = r"""set -eu
umask 077
dir=__DIR__
mkdir -p "$dir"
need() { [ -r "$1" ] || { echo "wifi: missing secret $1 (run: pyclan vars generate)" >&2; exit 1; }; }
ssid_bytes() { need "$1"; od -An -v -tu1 "$1" | tr -s ' \t\n' '\n' | sed '/^$/d' | tr '\n' ';'; }
keyfile_escape() { need "$1"; sed -e 's/\\/\\\\/g' -e 's/ /\\s/g' -e 's/\t/\\t/g' "$1"; }
"""


def render_hook(ctx: InstanceContext[Wifi], networks: dict[str, Network]) -> str:
    """The activation hook (POSIX sh) that writes this instance's keyfiles from the secrets."""
    out = [_HOOK_PRELUDE.replace("__DIR__", sh_quote(CONNECTIONS_DIR))]
    for name, net in networks.items():
        gen = generator_name(name)
        target = f"{CONNECTIONS_DIR}/{name}.nmconnection"
        out.append(f"# network {name}")
        out.append(f"ssid=$(ssid_bytes {sh_quote(ctx.vars.secret_path(gen, 'network-name'))})")
        if _has_password(net):
            out.append(f"psk=$(keyfile_escape {sh_quote(ctx.vars.secret_path(gen, 'password'))})")
        else:
            out.append("psk=")
        out.append(f"tmp={sh_quote(target + '.tmp')}")
        out.append("cat > \"$tmp\" <<PYCLAN_WIFI_EOF")
        out.append(_keyfile_template(ctx.instance_name, name, net) + "PYCLAN_WIFI_EOF")
        out.append('chmod 0600 "$tmp"')
        out.append(f'mv -f "$tmp" {sh_quote(target)}')
    keep = " ".join(sh_quote(f"{n}.nmconnection") for n in networks) or "''"
    out.append(
        "# drop keyfiles this instance wrote for networks it no longer has\n"
        'for f in "$dir"/*.nmconnection; do\n'
        '  [ -f "$f" ] || continue\n'
        f'  head -n 1 "$f" | grep -qxF {sh_quote(_marker(ctx.instance_name))} || continue\n'
        '  base=$(basename "$f")\n'
        f'  for k in {keep}; do [ "$base" = "$k" ] && continue 2; done\n'
        '  rm -f "$f"\n'
        "done\n"
        f"stamp={sh_quote(HOOK_STATE_DIR + '/wifi-networkmanager-conf')}\n"
        f"new=$(cat {sh_quote(NM_CONF)} 2>/dev/null | sha256sum | cut -d' ' -f1)\n"
        f"if {SYSTEMD_BOOTED}; then\n"
        "  systemctl enable --now NetworkManager.service >/dev/null 2>&1 || "
        "echo 'wifi: NetworkManager.service could not be started' >&2\n"
        "  if systemctl is-active --quiet NetworkManager.service; then\n"
        "    # NetworkManager may have started (at package install) before its pyclan conf existed\n"
        '    if [ "$new" != "$(cat "$stamp" 2>/dev/null || true)" ]; then systemctl reload NetworkManager.service; fi\n'
        "    nmcli connection reload\n"
        "  fi\n"
        "fi\n"
        'mkdir -p "${stamp%/*}"\n'
        "printf '%s\\n' \"$new\" > \"$stamp\"\n"
    )
    return "\n".join(out)
