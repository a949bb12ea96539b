"""monitoring: metrics of every client, collected by one server (Clan's `monitoring`, with Debian's Prometheus).

Clan's stack is Alloy on the clients pushing metrics to Mimir and journal logs to Loki on the server,
with optional Grafana. Debian 12 has none of those, so pyclan keeps Clan's roles and settings and
builds the same shape from what Debian has: clients run `prometheus-node-exporter` (with its systemd
collector limited to `monitoredSystemdServices`), and the server runs `prometheus`, which scrapes
every client of the instance (pull instead of push) and keeps the metrics in /var/lib/prometheus,
declared as the state `monitoring` so backups cover it. Logs stay in each machine's journal: the
Loki relabel rules are accepted for Clan inventories and have no effect; `grafana.enable` is an
error (Debian has no grafana package).
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pyclan.errors import ClanError
from pyclan.services import Constraints, InstanceContext, MachineConfig, RoleConstraint, Service
from pyclan.services.library._common import HOOK_STATE_DIR, SYSTEMD_BOOTED, sh_quote
from pyclan.services.library.internet import machine_host

SERVICE_NAME = "monitoring"
NODE_EXPORTER_PORT = 9100
PROMETHEUS_PORT = 9090
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
NODE_EXPORTER_DEFAULTS = "/etc/default/prometheus-node-exporter"
SCRAPE_INTERVAL = "15s"

service = Service(
    SERVICE_NAME,
    description="Monitoring stack gathering metrics and logs with a small resource footprint.",
    readme=(
        "Clients run prometheus-node-exporter; the one server runs Prometheus and scrapes every client "
        "(Debian's packages in place of Clan's Alloy, Mimir, Loki and Grafana)."
    ),
    categories=["System"],
    constraints=Constraints(roles={"server": RoleConstraint(min_machines=1, max_machines=1)}),
)


class JournalRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    beforeNormalization: list[str] = Field(
        default=[], description="Alloy `rule` blocks before label normalization (no effect in pyclan: no Loki)"
    )
    afterNormalization: list[str] = Field(
        default=[], description="Alloy `rule` blocks after label normalization (no effect in pyclan: no Loki)"
    )


class Journal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    relabelRules: JournalRules = Field(default=JournalRules(), description="Relabel rules of the journal")


class Loki(BaseModel):
    model_config = ConfigDict(extra="forbid")

    journal: Journal = Field(default=Journal(), description="Journal log shipping (not done by pyclan)")


class ClientSettings(BaseModel):
    """Settings of the `client` role."""

    model_config = ConfigDict(extra="forbid")

    monitoredSystemdServices: Literal["all", "nixos"] | list[str] = Field(
        default="nixos",
        description=(
            "systemd services whose state is exported (node exporter's systemd collector): \"all\", "
            "\"nixos\" (pyclan: the units pyclan's services define on the machine) or a list of unit names"
        ),
        examples=[["ssh.service", "prometheus.service"]],
    )
    useSSL: bool = Field(
        default=False,
        description="Whether to send metrics via https (no effect in pyclan: the server pulls over http)",
    )
    loki: Loki = Field(default=Loki(), description="Log shipping settings (no effect in pyclan)")


class Grafana(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enable: bool = Field(default=False, description="Whether to enable grafana (not available on Debian)")


class ServerSettings(BaseModel):
    """Settings of the `server` role."""

    model_config = ConfigDict(extra="forbid")

    grafana: Grafana = Field(default=Grafana(), description="Dashboards and alerting")
    host: str | None = Field(
        default=None,
        description=(
            "Hostname or address of the monitoring server; if null: the machine's name and meta.domain "
            "(pyclan: only shown in the README, clients do not connect to it)"
        ),
        examples=["monitoring.example.com"],
    )


def _unit_regex(settings: ClientSettings, machine_units: list[str]) -> str | None:
    """The node exporter's `--collector.systemd.unit-include` (None: every unit)."""
    if settings.monitoredSystemdServices == "all":
        return None
    units = machine_units if settings.monitoredSystemdServices == "nixos" else settings.monitoredSystemdServices
    return "(" + "|".join(re.escape(u) for u in sorted(units)) + ")" if units else "^$"


def _restart_when_changed(name: str, path: str, unit: str) -> str:
    """Enable the package's unit and restart it when `path` changed since the last activation."""
    return f"""set -eu
{SYSTEMD_BOOTED} || exit 0
stamp={sh_quote(f"{HOOK_STATE_DIR}/{name}")}
new=$(sha256sum {sh_quote(path)} | cut -d' ' -f1)
systemctl enable --quiet {unit}
if [ "$new" != "$(cat "$stamp" 2>/dev/null || true)" ] || ! systemctl is-active --quiet {unit}; then
    systemctl restart {unit}
    mkdir -p "${{stamp%/*}}"
    printf '%s\\n' "$new" > "$stamp"
fi
"""


@service.role(
    "client", interface=ClientSettings,
    description="Monitoring clients send their metrics and logs to the monitoring server.",
)  # fmt: skip
def client(ctx: InstanceContext[ClientSettings]) -> MachineConfig:
    # pyclan's stand-in for "services enabled through the NixOS config": the units of the machine's services
    # cannot be seen from one role, so "nixos" covers the units Debian's services here always have
    regex = _unit_regex(ctx.settings, ["prometheus-node-exporter.service", "ssh.service"])
    args = ["--collector.systemd"]
    if regex is not None:
        args.append(f"--collector.systemd.unit-include={regex}")
    defaults = f"# Managed by pyclan (service monitoring).\nARGS={sh_quote(' '.join(args))}\n"
    return (
        MachineConfig()
        .package("prometheus-node-exporter")
        .file(NODE_EXPORTER_DEFAULTS, defaults)
        .hook(
            "monitoring-node-exporter",
            _restart_when_changed("monitoring-node-exporter", NODE_EXPORTER_DEFAULTS, "prometheus-node-exporter"),
        )
        .check("monitoring-node-exporter-running", unit="prometheus-node-exporter.service", timeout=15)
        .check("monitoring-node-exporter-listens", command=port_owner_check(NODE_EXPORTER_PORT, "prometheus-node"),
               timeout=30)
    )


def port_owner_check(port: int, process: str) -> str:
    """sh: `process` (its 15-character name) listens on TCP `port`; else say who does, if anyone."""
    return (
        f"ss -Hltnp 'sport = :{port}' | grep -q '\"{process}\"' || "
        f"{{ echo 'TCP port {port} is not held by {process}; listening there:'; ss -Hltnp 'sport = :{port}'; exit 1; }}"
    )


def scrape_targets(ctx: InstanceContext[ServerSettings]) -> dict[str, str]:
    """Client machine → `host:port` the server scrapes (the `internet` host, else `<machine>.<domain>`)."""
    domain = str(ctx.meta.get("domain") or "clan")
    clients = sorted(ctx.roles["client"].machines) if "client" in ctx.roles else []
    targets = {}
    for name in clients:
        host = machine_host(ctx.exports, name) or f"{name}.{domain}"
        targets[name] = f"[{host}]:{NODE_EXPORTER_PORT}" if ":" in host else f"{host}:{NODE_EXPORTER_PORT}"
    return targets


def prometheus_config(targets: dict[str, str]) -> str:
    """prometheus.yml (JSON is YAML): one static target per client, labelled with the machine's name."""
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [
            {
                "job_name": "node",
                "static_configs": [
                    {"targets": [address], "labels": {"machine": name}} for name, address in sorted(targets.items())
                ],
            }
        ],
    }
    return "# Managed by pyclan (service monitoring).\n" + json.dumps(config, indent=2) + "\n"


@service.role(
    "server", interface=ServerSettings,
    description="The monitoring server that stores metrics and logs. Provides optional dashboards and alerting.",
)  # fmt: skip
def server(ctx: InstanceContext[ServerSettings]) -> MachineConfig:
    if ctx.settings.grafana.enable:
        raise ClanError.single(
            "settings-type",
            f"instances.{ctx.instance_name}.roles.server.machines.{ctx.machine.name}.settings.grafana.enable",
            "grafana is not available in pyclan on Debian 12 (Debian has no grafana package)",
            hint="remove grafana.enable; Prometheus' own web UI is on port 9090 of the server",
        )
    servers = sorted(ctx.roles["server"].machines)
    if len(servers) != 1:
        raise ClanError.single(
            "settings-type", f"instances.{ctx.instance_name}.roles.server",
            f"the monitoring service needs exactly one server machine, not {len(servers)} ({', '.join(servers)})",
            hint="keep one machine in roles.server",
        )  # fmt: skip
    return (
        MachineConfig()
        .package("prometheus")
        .file(PROMETHEUS_CONFIG, prometheus_config(scrape_targets(ctx)))
        .hook("monitoring-prometheus", _restart_when_changed("monitoring-prometheus", PROMETHEUS_CONFIG, "prometheus"))
        .check("monitoring-prometheus-running", unit="prometheus.service", timeout=15)
        .check("monitoring-prometheus-listens", command=port_owner_check(PROMETHEUS_PORT, "prometheus"), timeout=30)
        .state("monitoring", ["/var/lib/prometheus"], stop_on_restore=["prometheus.service"])
    )
