"""Deploying one bundled service of Clan's catalogue to fresh local hosts, for the service host tests.

`deploy_service(...)` writes a clan.toml, creates an admin key, generates the vars (prompt answers
given) and runs `pyclan machines update` on the named local hosts, like a user would. Commands on
the hosts then go through pyclan's own transport (`clan_ssh`), since services may change host keys.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import DeployClan, LocalHosts, SshRun, clan_ssh

from pyclan.hosts import control as hosts


def client_public_key() -> str:
    """The public half of pyclan's SSH client key for local hosts."""
    done = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(hosts.client_key_path())], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@dataclass
class Deployed:
    clan: DeployClan
    hosts: dict[str, hosts.HostInfo]
    run: SshRun


def deploy_service(
    local_hosts: LocalHosts,
    tmp: Path,
    mp: pytest.MonkeyPatch,
    machines: list[str],
    toml: str,
    prompts: Mapping[str, Mapping[str, str]] | None = None,
) -> Deployed:
    """Fresh hosts `machines`, the clan `toml` deployed to them.

    Placeholders in `toml`: `{address:<m>}` (host m's address), `{pyclan-client-key}` (the public key
    pyclan's deploy logs in with).
    """
    mp.setenv("PYCLAN_CACHE_DIR", str(tmp / "cache"))
    mp.setenv("PYCLAN_AGE_KEY_FILE", str(tmp / "age.key"))
    infos = {h.name: h for h in local_hosts(machines, fresh=True)}
    for name, info in infos.items():
        toml = toml.replace(f"{{address:{name}}}", info.address)
    if "{pyclan-client-key}" in toml:  # services that replace root's authorized_keys must keep deploy's key
        toml = toml.replace("{pyclan-client-key}", client_public_key())
    root = tmp / "clan"
    root.mkdir()
    (root / "clan.toml").write_text(toml)
    clan = DeployClan(root)
    clan.cli("vars", "keygen", "--user", "tester", check=True)
    (tmp / "answers.json").write_text(json.dumps(prompts or {}))
    clan.cli("vars", "generate", "--prompt-values", str(tmp / "answers.json"), check=True, timeout=600)
    proc = clan.cli("machines", "update", "--json", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    reports = json.loads(proc.stdout)
    assert sorted((r["machine"], r["error"]) for r in reports) == [(m, None) for m in sorted(machines)], reports
    return Deployed(clan, infos, clan_ssh(root))
