"""Deploy commands up to the point where a host would be contacted (no hosts needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SERVICE = '''
from pydantic import BaseModel

from pyclan.services import InstanceContext, MachineConfig, Service
from pyclan.services.service import Constraints, RoleConstraint

service = Service("single", constraints=Constraints(roles={"default": RoleConstraint(max_machines=1)}))


class Settings(BaseModel):
    text: str = "hi"


@service.role("default", interface=Settings)
def default(ctx: InstanceContext[Settings]) -> MachineConfig:
    return MachineConfig().file("/etc/single", ctx.settings.text + "\\n").package("hello")
'''


@pytest.fixture
def clan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "clan"
    (root / "services").mkdir(parents=True)
    (root / "services" / "single.py").write_text(SERVICE)
    (root / "clan.toml").write_text(textwrap.dedent("""
        [meta]
        name = "cli"
        [machines.a]
        tags = ["web"]
        [machines.b]
        [instances.single]
        module.name = "single"
        module.input = "self"
        roles.default.machines.a = {}
    """))
    monkeypatch.setenv("PYCLAN_CACHE_DIR", str(tmp_path / "cache"))  # the test looks into it
    return root


def pyclan(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(root), *args],
        capture_output=True, text=True, check=False, env=dict(os.environ), timeout=120,
    )


def test_build_prints_the_id_and_where_it_is(clan: Path, tmp_path: Path) -> None:
    proc = pyclan(clan, "machines", "build", "a")
    assert proc.returncode == 0, proc.stderr
    gen_id, path = proc.stdout.split()
    assert len(gen_id) == 64 and Path(path) == tmp_path / "cache" / "builds" / "a" / gen_id
    assert json.loads((Path(path) / "manifest.json").read_text())["packages"] == ["hello"]
    again = json.loads(pyclan(clan, "machines", "build", "a", "--json").stdout)
    assert again["id"] == gen_id and again["files"] == 1 and again["packages"] == 1
    unknown = pyclan(clan, "machines", "build", "c")
    assert unknown.returncode == 1 and "no machine named 'c'" in unknown.stderr


def test_constraint_checks_block_update_unless_no_check(clan: Path) -> None:
    toml = (clan / "clan.toml").read_text().replace("roles.default.machines.a = {}", 'roles.default.tags = ["all"]')
    (clan / "clan.toml").write_text(toml)
    blocked = pyclan(clan, "machines", "update", "a")
    assert blocked.returncode == 1
    assert "single-single-default-maxMachines" in blocked.stderr and "--no-check" in blocked.stderr
    passed = pyclan(clan, "machines", "update", "a", "--no-check", "--json")
    [report] = json.loads(passed.stdout)
    assert passed.returncode == 1 and report["machine"] == "a" and not report["changed"]
    assert "no target host is known for machine 'a'" in report["error"] and "pyclan hosts up a" in report["hint"]


def test_machine_selection_and_target_host_rules(clan: Path) -> None:
    two = pyclan(clan, "machines", "update", "a", "b", "--target-host", "root@192.0.2.1")
    assert two.returncode == 1 and "--target-host can only be used with one machine" in two.stderr
    both = pyclan(clan, "machines", "update", "a", "--tags", "web")
    assert both.returncode == 1 and "not both" in both.stderr
    none = pyclan(clan, "machines", "update", "--tags", "db")
    assert none.returncode == 1 and "no machine carries the tag 'db'" in none.stderr
    typo_tag = pyclan(clan, "machines", "update", "--tags", "wbe", "all")
    assert typo_tag.returncode == 1 and "did you mean 'web'?" in typo_tag.stderr
    bad = pyclan(clan, "machines", "update", "a", "--target-host", "root@@x y")
    assert bad.returncode == 1 and "cannot read target host" in bad.stderr
    typo = pyclan(clan, "ssh", "aa", "-c", "true")
    assert typo.returncode == 1 and "did you mean 'a'" in typo.stderr
