"""monitoring: Clan's inventory loads; the server scrapes every client; what Debian cannot do is an error."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable

import pytest

from pyclan.clan import Clan
from pyclan.errors import ClanError

MakeClan = Callable[..., Clan]

# Clan's README example (its Alloy relabel rules are accepted and have no effect)
CLAN = """
[meta]
name = "mon"
domain = "fleet.test"
[machines.web]
[machines.db]
[machines.observer]
[instances.internet]
roles.default.machines.web.settings.host = "10.0.0.5"
[instances.monitoring]
roles.client.tags = ["all"]
roles.client.settings.useSSL = true
roles.client.settings.loki.journal.relabelRules.beforeNormalization = ['rule { target_label = "x" }']
roles.client.machines.db.settings.monitoredSystemdServices = ["postgresql.service", "ssh.service"]
roles.server.machines.observer.settings = {}
"""


def _args(defaults: str) -> list[str]:
    line = next(ln for ln in defaults.splitlines() if ln.startswith("ARGS="))
    return shlex.split(line.removeprefix("ARGS="))[0].split(" ")


def test_server_scrapes_every_client_by_its_address(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN)
    server = clan.evaluator.config("observer")
    assert "prometheus" in server.packages
    text = server.files["/etc/prometheus/prometheus.yml"].content
    config = json.loads(text.split("\n", 1)[1])
    assert config["scrape_configs"][0]["static_configs"] == [
        {"targets": ["db.fleet.test:9100"], "labels": {"machine": "db"}},
        {"targets": ["observer.fleet.test:9100"], "labels": {"machine": "observer"}},  # `all` has every machine
        {"targets": ["10.0.0.5:9100"], "labels": {"machine": "web"}},  # the internet service's host
    ]
    assert server.states["monitoring"].folders == ("/var/lib/prometheus",)
    assert server.states["monitoring"].stop_on_restore == ("prometheus.service",)


def test_clients_run_node_exporter_with_their_systemd_units(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN)
    db = clan.evaluator.config("db")
    assert "prometheus-node-exporter" in db.packages
    assert _args(db.files["/etc/default/prometheus-node-exporter"].content) == [
        "--collector.systemd", r"--collector.systemd.unit-include=(postgresql\.service|ssh\.service)",
    ]  # fmt: skip
    everything = make_clan(CLAN.replace('["postgresql.service", "ssh.service"]', '"all"'))
    assert _args(everything.evaluator.config("db").files["/etc/default/prometheus-node-exporter"].content) == [
        "--collector.systemd"
    ]
    assert "monitoring-node-exporter" in db.hooks


def test_grafana_is_a_clear_error_on_debian(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN.replace("roles.server.machines.observer.settings = {}",
                                  "roles.server.machines.observer.settings.grafana.enable = true"))  # fmt: skip
    with pytest.raises(ClanError) as err:
        clan.evaluator.config("observer")
    problem = err.value.problems[0]
    assert problem.path == "instances.monitoring.roles.server.machines.observer.settings.grafana.enable"
    assert "not available in pyclan on Debian" in problem.message
