"""dyndns: DNS records that follow the machine's IP address, with Debian's ddclient (Clan's `dyndns`).

Clan runs qdm12/ddns-updater with a JSON list of provider settings. Debian 12 does not package
ddns-updater, so pyclan keeps Clan's interface (roles, option names, the per-domain prompted
secret `dyndns-<provider>-<domain>`) and renders those settings as a ddclient 3.10 configuration:
each entry of `settings` becomes one ddclient host line with the provider's ddclient protocol
(`PROTOCOLS`). ddclient has no web UI, so `server.enable` is an error.

ddclient 3.10 has no protocol for Porkbun, the provider of Clan's own README example, so porkbun
entries go to pyclan's own updater instead: the packaged POSIX-sh `_dyndns_porkbun.sh`, run with curl
by `dyndns-porkbun.service` on `dyndns-porkbun.timer` (every `period`), which calls Porkbun's JSON
API v3 (`editByNameType`) with the record list `/etc/pyclan/dyndns/porkbun.list` (no secrets in it)
and the secret API key as a systemd credential (LoadCredential), sent to curl on its standard input.

One daemon per machine, as Clan's: `dyndns.service` runs `ddclient -foreground` as user
`dyndns` (home /var/lib/dyndns). The hook `dyndns` writes /var/lib/dyndns/ddclient.conf from the
rendered template and the secrets (ddclient has no password file option), stops Debian's own
`ddclient.service` (it would update with the package's debconf config) and restarts ours when the
config changed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyclan.errors import ClanError
from pyclan.services import Generator, InstanceContext, MachineConfig, Prompt, Service, VarFile
from pyclan.services.library._common import SYSTEMD_BOOTED, PromptCopyRun, single_line, systemd_unit

NAME = "dyndns"
HOME = f"/var/lib/{NAME}"
CONFIG = f"{HOME}/ddclient.conf"
CACHE = f"{HOME}/ddclient.cache"
TEMPLATE = "/etc/pyclan/dyndns/ddclient.conf"
UNIT = f"{NAME}.service"
SECRET_LINE = "@pyclan-secret "  # a template line `@pyclan-secret <path>` becomes `password='<secret>'`
DEFAULT_WEB = {"ipv4": "ipify-ipv4", "ipv6": "ipify-ipv6"}  # ddclient's names of api.ipify.org / api6
PORKBUN = "porkbun"
PORKBUN_API = "https://api.porkbun.com"
PORKBUN_UNIT = f"{NAME}-porkbun.service"
PORKBUN_TIMER = f"{NAME}-porkbun.timer"
PORKBUN_SCRIPT = "/etc/pyclan/dyndns/porkbun-update.sh"
PORKBUN_LIST = "/etc/pyclan/dyndns/porkbun.list"
PORKBUN_WEB = {"ipv4": "https://api.ipify.org", "ipv6": "https://api6.ipify.org"}
PORKBUN_KEYS = {  # extraSettings keys of a porkbun entry (ddns-updater's names)
    "host": "comma-separated records of the domain ('@' is the domain itself; default '@')",
    "ip_version": "'ipv4' (default, an A record) or 'ipv6' (AAAA)",
    "ipv6_suffix": "only ''",
    "api_key": "the account's public API key (pk1_...); the secret API key is the prompted secret",
    "ttl": "time to live of the records",
    "server": "the API's server, host[:port] (https) or 'http://host[:port]' (default api.porkbun.com)",
}

SecretField = Literal["password", "token", "api_key", "secret_api_key"]
ExtraValue = str | int | bool

service = Service(
    NAME,
    description="A dynamic DNS service to auto update domain IPs",
    readme=(
        "Keeps DNS records at a dynamic DNS provider in sync with the machine's IP address, with Debian's "
        "ddclient; each domain's secret is prompted once (shared generator `dyndns-<provider>-<domain>`)."
    ),
    categories=["Network"],
)


@dataclass(frozen=True)
class Protocol:
    """How one ddns-updater provider is written for ddclient."""

    ddclient: str  # ddclient's `protocol=`
    login: Literal["domain", "username", "cloudflare", None]  # what goes into `login=`
    zone: bool  # the domain is ddclient's `zone=`
    short_hosts: bool  # hosts are written without the domain (namecheap: `@`, `home`)
    suffix: str = ""  # a fixed domain the provider appends (duckdns.org)


# ddns-updater's provider names → ddclient 3.10 (Debian 12). Providers missing here (porkbun, ovh,
# godaddy, …) have no ddclient 3.10 protocol that takes ddns-updater's fields.
PROTOCOLS: dict[str, Protocol] = {
    "namecheap": Protocol("namecheap", "domain", zone=False, short_hosts=True),
    "cloudflare": Protocol("cloudflare", "cloudflare", zone=True, short_hosts=False),
    "duckdns": Protocol("duckdns", None, zone=False, short_hosts=True, suffix="duckdns.org"),
    "dyn": Protocol("dyndns2", "username", zone=False, short_hosts=False),
    "noip": Protocol("noip", "username", zone=False, short_hosts=False),
    "hetzner": Protocol("hetzner", None, zone=True, short_hosts=False),
    "gandi": Protocol("gandi", None, zone=True, short_hosts=False),
}
# extraSettings keys pyclan understands (ddns-updater's names, plus `server` as in Clan's own test)
EXTRA_KEYS = {
    "host": "comma-separated records of the domain ('@' is the domain itself; default '@')",
    "ip_version": "'ipv4' (default), 'ipv6' or 'ipv4 or ipv6'",
    "ipv6_suffix": "only '' (ddclient sends the address as it is)",
    "username": "the account name (providers dyn and noip)",
    "email": "the account e-mail with a global API key (cloudflare; with a token leave it out)",
    "ttl": "time to live of the records (cloudflare, hetzner, gandi)",
    "server": "the provider's update server, host[:port]; 'http://host[:port]' for plain HTTP",
}
_HOST = re.compile(r"^(@|\*|[A-Za-z0-9*_-]+(\.[A-Za-z0-9_-]+)*)$")
_DOMAIN = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_LOGIN = re.compile(r"^[A-Za-z0-9@._+-]+$")
_SERVER = re.compile(r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._/-]*)?$")
_URL = re.compile(r"^https?://[A-Za-z0-9.:\[\]-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/?&=%-]*)?$")
_IFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_API_KEY = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


class WebServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool = Field(default=False, description="Whether to enable dyndns webserver (not available: ddclient has "
                                                     "no web UI)")
    domain: str | None = Field(default=None, description="Domain to serve the webservice on")
    port: int = Field(default=54805, description="Port to listen on")
    acmeEmail: str | None = Field(default=None, description="Email address for account creation and correspondence "
                                                            "from the CA")


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="The dyndns provider to use", examples=["namecheap"])
    domain: str = Field(description="The top level domain to update.", examples=["example.com"])
    secret_field_name: SecretField = Field(default="password", description="The field name for the secret")
    extraSettings: dict[str, ExtraValue] = Field(
        default_factory=dict,
        description="Extra settings for the provider (strings, integers, booleans), with ddns-updater's names",
    )


class Default(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    server: WebServer = Field(default_factory=WebServer, description="ddns-updater's web UI (not in pyclan)")
    period: int = Field(default=5, ge=1, description="Domain update period in minutes")
    settings: dict[str, Entry] = Field(default_factory=dict, description="Configuration for which domains to update")
    interface: str | None = Field(
        default=None,
        description="pyclan addition: take the address from this network interface (ddclient's ifv4/ifv6) instead "
                    "of asking a web page",
    )
    ipUrl: str | None = Field(
        default=None,
        description="pyclan addition: the web page that tells the machine its public address (default: api.ipify.org)",
    )

    @field_validator("interface")
    @classmethod
    def _interface(cls, value: str | None) -> str | None:
        if value is not None and not _IFACE.match(value):
            raise ValueError(f"{value!r} is not a network interface name")
        return value

    @field_validator("ipUrl")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not _URL.match(value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL without quotes, spaces or commas")
        return value


def secret_id(entry: Entry) -> str:
    """Clan's generator (and file, and prompt) name: one secret per provider and domain."""
    return f"{NAME}-{entry.provider}-{entry.domain}"


# -- checking and rendering ------------------------------------------------------------------------------


def _fail(path: str, message: str, hint: str) -> ClanError:
    return ClanError.single("settings-type", path, message, hint=hint)


def _protocol(entry: Entry, path: str) -> Protocol:
    protocol = PROTOCOLS.get(entry.provider)
    if protocol is None:
        providers = sorted([*PROTOCOLS, PORKBUN])
        close = difflib.get_close_matches(entry.provider, providers, n=1)
        guess = f"did you mean '{close[0]}'? " if close else ""
        raise _fail(
            f"{path}.provider",
            f"the dyndns provider '{entry.provider}' is not available in pyclan: Debian 12's ddclient 3.10 has no "
            "protocol for it (and pyclan's own updater speaks only porkbun)",
            f"{guess}providers: {', '.join(providers)}",
        )
    return protocol


def _text(value: ExtraValue, key: str, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(f"{path}.extraSettings.{key}", f"{key} must be a string, not {value!r}", "quote the value")
    return str(value)


def _hosts(entry: Entry, protocol: Protocol, path: str) -> list[str]:
    raw = _text(entry.extraSettings.get("host", "@"), "host", path)
    names = [h.strip() for h in raw.split(",") if h.strip()]
    for name in names:
        if not _HOST.match(name):
            raise _fail(f"{path}.extraSettings.host", f"{name!r} is not a record name",
                        "use names like '@', 'home' or 'a.b', separated by commas")
    fqdns = [entry.domain if h == "@" else f"{h}.{entry.domain}" for h in names]
    if protocol.suffix:
        return [f.removesuffix(f".{protocol.suffix}") for f in fqdns]
    return names if protocol.short_hosts else fqdns


def _ip_options(entry: Entry, settings: Default, path: str) -> list[str]:
    """Where ddclient gets the address: the interface, or a web page (ddclient 3.10's per-host `use`)."""
    version = _text(entry.extraSettings.get("ip_version", "ipv4"), "ip_version", path)
    if version not in ("ipv4", "ipv6"):
        hint = "use 'ipv4' or 'ipv6'"
        if version == "ipv4 or ipv6":
            hint = "ddclient 3.10 sends one address per record: " + hint + " (one entry per address family)"
        raise _fail(f"{path}.extraSettings.ip_version", f"ip_version {version!r} is not available", hint)
    suffix = entry.extraSettings.get("ipv6_suffix", "")
    if suffix != "":
        raise _fail(f"{path}.extraSettings.ipv6_suffix", "ddclient cannot replace the suffix of an IPv6 address",
                    "remove ipv6_suffix (or set it to '')")
    if settings.interface is not None:
        if version == "ipv6":
            raise _fail(f"{path}.extraSettings.ip_version", "ddclient 3.10 reads only IPv4 addresses of an interface",
                        "use ipUrl (a page that answers with the IPv6 address) instead of interface")
        return ["use=if", f"if={settings.interface}"]
    return ["use=web", f"web={settings.ipUrl or DEFAULT_WEB[version]}"]


def _entry_options(entry: Entry, protocol: Protocol, path: str) -> tuple[list[str], bool | None]:
    """ddclient options of one entry (without the password), and whether its server wants TLS (None: default)."""
    extra = entry.extraSettings
    unknown = sorted(set(extra) - set(EXTRA_KEYS))
    if unknown:
        raise _fail(f"{path}.extraSettings.{unknown[0]}",
                    f"extraSettings key '{unknown[0]}' has no meaning for ddclient",
                    "keys pyclan understands: " + "; ".join(f"{k}: {v}" for k, v in EXTRA_KEYS.items()))
    options = [f"protocol={protocol.ddclient}"]
    tls: bool | None = None
    if "server" in extra:
        server = _text(extra["server"], "server", path)
        if not _SERVER.match(server):
            raise _fail(f"{path}.extraSettings.server", f"{server!r} is not a server name with an optional port",
                        "write host[:port], https://host[:port] or http://host[:port]")
        tls = None if "://" not in server else server.startswith("https://")
        options.append(f"server={server.split('://', 1)[-1]}")
    login: str | None = None
    if protocol.login == "domain":
        login = entry.domain
    elif protocol.login == "username":
        if "username" not in extra:
            raise _fail(f"{path}.extraSettings", f"provider '{entry.provider}' needs extraSettings.username",
                        "set extraSettings.username to the account name")
        login = _text(extra["username"], "username", path)
    elif protocol.login == "cloudflare":
        # an API token logs in as `token`; a global API key with the account's e-mail
        login = "token" if entry.secret_field_name == "token" else _text(extra.get("email", ""), "email", path)
        if not login:
            raise _fail(f"{path}.extraSettings", "cloudflare with a global API key needs extraSettings.email",
                        "set extraSettings.email, or use an API token: secret_field_name = \"token\"")
    if login is not None:
        if not _LOGIN.match(login):
            raise _fail(path, f"the login {login!r} has characters ddclient cannot read",
                        "use letters, digits and @ . _ + -")
        options.append(f"login={login}")
    if protocol.zone:
        options.append(f"zone={entry.domain}")
    if "ttl" in extra:
        ttl = extra["ttl"]
        if isinstance(ttl, bool) or not str(ttl).isdigit():
            raise _fail(f"{path}.extraSettings.ttl", f"ttl must be a number of seconds, not {ttl!r}", "e.g. ttl = 300")
        options.append(f"ttl={ttl}")
    return options, tls


def _porkbun_records(entry: Entry, settings: Default, path: str) -> list[str]:
    """Lines of porkbun.list for one entry: `BASE DOMAIN TYPE NAME APIKEY CREDENTIAL TTL SOURCE`.

    Every field is checked here to be one word of safe characters: the updater splits lines on spaces.
    """
    extra = entry.extraSettings
    if entry.secret_field_name != "secret_api_key":
        raise _fail(f"{path}.secret_field_name",
                    f"porkbun's prompted secret is its secret API key, not {entry.secret_field_name!r}: the secret "
                    "key must not be written in the inventory",
                    'set secret_field_name = "secret_api_key" and the public key in extraSettings.api_key')
    unknown = sorted(set(extra) - set(PORKBUN_KEYS))
    if unknown:
        raise _fail(f"{path}.extraSettings.{unknown[0]}",
                    f"extraSettings key '{unknown[0]}' has no meaning for porkbun",
                    "keys pyclan understands for porkbun: " + "; ".join(f"{k}: {v}" for k, v in PORKBUN_KEYS.items()))
    if "api_key" not in extra:
        raise _fail(f"{path}.extraSettings", "porkbun needs extraSettings.api_key (the public API key, pk1_...)",
                    "set extraSettings.api_key; the secret API key is prompted by `pyclan vars generate`")
    api_key = _text(extra["api_key"], "api_key", path)
    if not _API_KEY.match(api_key):
        raise _fail(f"{path}.extraSettings.api_key", f"{api_key!r} is not a Porkbun API key",
                    "Porkbun's keys are letters, digits, '_' and '-' (pk1_...)")
    version = _text(extra.get("ip_version", "ipv4"), "ip_version", path)
    if version not in PORKBUN_WEB:
        raise _fail(f"{path}.extraSettings.ip_version", f"ip_version {version!r} is not available",
                    "use 'ipv4' or 'ipv6' (one entry per address family)")
    if extra.get("ipv6_suffix", "") != "":
        raise _fail(f"{path}.extraSettings.ipv6_suffix", "pyclan's porkbun updater cannot replace the suffix of an "
                    "IPv6 address", "remove ipv6_suffix (or set it to '')")
    base = PORKBUN_API
    if "server" in extra:
        server = _text(extra["server"], "server", path)
        if not _SERVER.match(server):
            raise _fail(f"{path}.extraSettings.server", f"{server!r} is not a server name with an optional port",
                        "write host[:port], https://host[:port] or http://host[:port]")
        base = (server if "://" in server else f"https://{server}").rstrip("/")
    ttl = "-"
    if "ttl" in extra:
        raw = extra["ttl"]
        if isinstance(raw, bool) or not str(raw).isdigit():
            raise _fail(f"{path}.extraSettings.ttl", f"ttl must be a number of seconds, not {raw!r}", "e.g. ttl = 600")
        ttl = str(raw)
    if settings.interface is not None:
        source = f"if:{settings.interface}"
    else:
        source = f"url:{settings.ipUrl or PORKBUN_WEB[version]}"
    record_type = "A" if version == "ipv4" else "AAAA"
    names = _hosts(entry, Protocol("", None, zone=False, short_hosts=True), path)
    return [f"{base} {entry.domain} {record_type} {name} {api_key} {secret_id(entry)} {ttl} {source}\n"
            for name in names]


@dataclass(frozen=True)
class Rendered:
    template: str | None  # ddclient.conf with placeholders (None: no ddclient entries)
    secrets: dict[str, str]  # secret id → file the ddclient hook reads
    porkbun: str | None = None  # porkbun.list (None: no porkbun entries)
    credentials: dict[str, str] = field(default_factory=dict)  # porkbun secret id → file (LoadCredential)


def render_config(settings: Default, where: str, secret_path: Mapping[str, str]) -> Rendered:
    """ddclient.conf with one `@pyclan-secret <path>` line per entry where its password goes, and porkbun.list."""
    if settings.interface is not None and settings.ipUrl is not None:
        raise _fail(f"{where}.interface", "interface and ipUrl both say where the address comes from",
                    "set only one of them")
    entries: list[str] = []
    records: list[str] = []
    secrets: dict[str, str] = {}
    credentials: dict[str, str] = {}
    tls_wanted: set[bool] = set()
    for key, entry in sorted(settings.settings.items()):
        path = f"{where}.settings.{key}"
        single_line(key, "the name of a dyndns setting", path)  # it is written as a comment of the config
        if entry.secret_field_name in entry.extraSettings:
            raise _fail(f"{path}.extraSettings.{entry.secret_field_name}",
                        f"{entry.secret_field_name} must not be set in extraSettings: the dyndns service sets it "
                        f"from the prompted secret {secret_id(entry)}",
                        f"remove extraSettings.{entry.secret_field_name}; `pyclan vars generate` asks for it")
        if not _DOMAIN.match(entry.domain):
            raise _fail(f"{path}.domain", f"{entry.domain!r} is not a domain name", "e.g. example.com")
        if entry.provider == PORKBUN:
            records += _porkbun_records(entry, settings, path)
            credentials[secret_id(entry)] = secret_path[secret_id(entry)]
            continue
        protocol = _protocol(entry, path)
        options, tls = _entry_options(entry, protocol, path)
        if tls is not None:
            tls_wanted.add(tls)
        options += _ip_options(entry, settings, path)
        entries.append(
            f"# {key}: {entry.provider} {entry.domain}\n"
            + "".join(f"{o}, \\\n" for o in options)
            + f"{SECRET_LINE}{secret_path[secret_id(entry)]}\n"
            + ",".join(_hosts(entry, protocol, path)) + "\n"
        )
        secrets[secret_id(entry)] = secret_path[secret_id(entry)]
    if len(tls_wanted) > 1:
        raise _fail(f"{where}.settings", "ddclient uses TLS for every server or for none; some servers here are "
                    "http:// and some https://", "give every server the same scheme")
    ssl = "no" if tls_wanted == {False} else "yes"
    head = (
        "# Managed by pyclan (dyndns service): ddclient's configuration, the passwords filled in on the host\n"
        f"daemon={settings.period * 60}\n"
        f"ssl={ssl}\n"
    )
    porkbun = None
    if records:
        porkbun = ("# Managed by pyclan (dyndns service): Porkbun records, one a line:\n"
                   "# BASE DOMAIN TYPE NAME APIKEY CREDENTIAL TTL SOURCE\n" + "".join(records))
    template = head + "".join(f"\n{e}" for e in entries) if entries else None
    return Rendered(template, secrets, porkbun, credentials)


def render_unit() -> str:
    return systemd_unit({
        "Unit": {"Description": "Dynamic DNS updater (pyclan dyndns service, ddclient)",
                 "Documentation": "man:ddclient(8)", "After": "network-online.target",
                 "Wants": "network-online.target"},
        "Service": {
            "User": NAME, "Group": NAME, "WorkingDirectory": HOME,
            "ExecStart": f"/usr/bin/ddclient -foreground -noquiet -file {CONFIG} -cache {CACHE}",
            "Restart": "always", "RestartSec": 60,
            "NoNewPrivileges": True, "PrivateTmp": True, "PrivateDevices": True, "ProtectSystem": "strict",
            "ProtectHome": True, "ProtectKernelModules": True, "ProtectKernelTunables": True,
            "ReadWritePaths": HOME,
        },
        "Install": {"WantedBy": "multi-user.target"},
    })


@cache
def porkbun_script() -> str:
    """pyclan's own Porkbun updater: the packaged `_dyndns_porkbun.sh` (CI runs shellcheck on it)."""
    return resources.files(__package__).joinpath("_dyndns_porkbun.sh").read_text(encoding="utf-8")


def render_porkbun_units(period: int, credentials: Mapping[str, str]) -> tuple[str, str]:
    """A oneshot run of the updater as `dyndns`, the secret keys as credentials; a timer every `period` minutes."""
    svc = systemd_unit({
        "Unit": {"Description": "Dynamic DNS updater for Porkbun (pyclan dyndns service)",
                 "After": "network-online.target", "Wants": "network-online.target"},
        "Service": {
            "Type": "oneshot", "User": NAME, "Group": NAME,
            "StateDirectory": NAME, "StateDirectoryMode": "0750", "WorkingDirectory": HOME,
            "LoadCredential": [f"{name}:{path}" for name, path in sorted(credentials.items())],
            "ExecStart": f"/bin/sh {PORKBUN_SCRIPT} {PORKBUN_LIST}",
            "NoNewPrivileges": True, "PrivateTmp": True, "PrivateDevices": True, "ProtectSystem": "strict",
            "ProtectHome": True, "ProtectKernelModules": True, "ProtectKernelTunables": True,
        },
    })
    timer = systemd_unit({
        "Unit": {"Description": "Dynamic DNS updates for Porkbun every period (pyclan dyndns service)"},
        "Timer": {"OnActiveSec": "0", "OnUnitActiveSec": f"{period}min", "AccuracySec": "1s"},
        "Install": {"WantedBy": "timers.target"},
    })
    return svc, timer


def render_hook() -> str:
    """Fill the passwords into ddclient.conf (owned by dyndns, 0600); restart the daemon when it changed."""
    return f"""set -eu
if {SYSTEMD_BOOTED}; then
  # Debian's own unit would run the package's debconf config (no-ip, over the internet)
  systemctl disable --now ddclient.service >/dev/null 2>&1 || true
fi
install -d -o {NAME} -g {NAME} -m 0750 {HOME}
tmp=$(mktemp {HOME}/.ddclient.conf.XXXXXX)
trap 'rm -f "$tmp"' EXIT
newline='
'
while IFS= read -r line; do
  case $line in
    "{SECRET_LINE}"*)
      file=${{line#"{SECRET_LINE}"}}
      secret=$(cat "$file")
      case $secret in
        *"$newline"*) echo "dyndns: the secret in $file has more than one line" >&2; exit 1 ;;
      esac
      printf "password='%s' \\\\\\\\\\n" "$secret" ;;
    *) printf '%s\\n' "$line" ;;
  esac
done < {TEMPLATE} > "$tmp"
chown {NAME}:{NAME} "$tmp"
chmod 0600 "$tmp"
changed=
if cmp -s "$tmp" {CONFIG}; then rm -f "$tmp"; else mv "$tmp" {CONFIG}; changed=1; fi
if {SYSTEMD_BOOTED}; then
  if [ -n "$changed" ]; then systemctl restart {UNIT}; else systemctl start {UNIT}; fi
fi
"""


# -- the role ---------------------------------------------------------------------------------------------


def _where(ctx: InstanceContext[Default]) -> str:
    return f"instances.{ctx.instance_name}.roles.default.machines.{ctx.machine.name}.settings"


@service.role("default", interface=Default, description="Placeholder role to apply the dyndns service")
def default(ctx: InstanceContext[Default]) -> MachineConfig | None:
    settings = ctx.settings
    if settings.server.enable:
        raise _fail(f"{_where(ctx)}.server.enable",
                    "the dyndns web server is not available in pyclan: ddclient (Debian's updater) has no web UI",
                    "remove server.enable; ddclient logs each update to the journal (journalctl -u dyndns)")
    if not settings.settings:
        return None  # as Clan: nothing to update, no daemon
    secrets = {secret_id(e): ctx.vars.secret_path(secret_id(e), secret_id(e)) for e in settings.settings.values()}
    rendered = render_config(settings, _where(ctx), secrets)
    cfg = (
        MachineConfig()
        .group(NAME, system=True)
        .user(NAME, group=NAME, system=True, home=HOME, create_home=False, shell="/usr/sbin/nologin",
              description="User for dyndns service")
    )
    if rendered.template is not None:
        (cfg.package("ddclient")
            .file(TEMPLATE, rendered.template, mode="0644")
            .unit(UNIT, render_unit(), start=False)  # the hook starts it once the passwords are in place
            .hook(NAME, render_hook())
            .check("dyndns-running", unit=UNIT, timeout=15))
    if rendered.porkbun is not None:
        svc, timer = render_porkbun_units(settings.period, rendered.credentials)
        (cfg.package("curl", "iproute2")
            .file(PORKBUN_SCRIPT, porkbun_script(), mode="0755")
            .file(PORKBUN_LIST, rendered.porkbun, mode="0644")
            .unit(PORKBUN_UNIT, svc, enabled=False, start=False)
            .unit(PORKBUN_TIMER, timer)
            .check("dyndns-porkbun-timer", unit=PORKBUN_TIMER, timeout=15))
    return cfg


@default.generators
def secret_generators(ctx: InstanceContext[Default]) -> list[Generator]:
    """One shared, prompted secret per provider and domain (entries that share both share it)."""
    gens: dict[str, Generator] = {}
    for entry in ctx.settings.settings.values():
        name = secret_id(entry)
        gens[name] = Generator(
            name=name, share=True, files={name: VarFile(secret=True)},
            prompts={name: Prompt(description=f"the secret (password, token or API key) of {entry.provider} for "
                                              f"{entry.domain}", type="hidden", persist=True)},
            run=PromptCopyRun((name,)),
        )
    return [gens[n] for n in sorted(gens)]

