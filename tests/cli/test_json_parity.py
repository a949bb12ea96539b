"""The CLI is a thin face: for every listing verb, `--json` prints exactly the API's result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyclan.cli.main import app

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"

# (CLI arguments after `pyclan -C DIR`, API function, its arguments besides `flake`)
LISTING_VERBS: list[tuple[list[str], str, dict[str, Any]]] = [
    (["show"], "get_clan_details", {}),
    (["check"], "check_clan", {}),
    (["machines", "list"], "list_machines", {}),
    (["machines", "list", "--tags", "laptop", "all"], "list_machines", {"tags": ["laptop", "all"]}),
    (["machines", "config", "backup-server"], "get_machine_config", {"machine": "backup-server"}),
    (["services", "list"], "list_service_modules", {}),
    (["services", "show", "sshd"], "get_service_module", {"name": "sshd"}),
    (["inventory", "resolve"], "resolve_inventory", {}),
    (["vars", "list", "fred-laptop"], "list_vars", {"machine": "fred-laptop"}),
    (["inputs", "list"], "list_inputs", {}),
    (["hosts", "status"], "hosts_status", {}),
]


@pytest.fixture
def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, root)
    return root


def pyclan(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


@pytest.mark.parametrize(("cli", "name", "args"), LISTING_VERBS, ids=[" ".join(v[0]) for v in LISTING_VERBS])
def test_cli_json_equals_api_result(quickstart: Path, cli: list[str], name: str, args: dict[str, Any]) -> None:
    code, out = pyclan("-C", str(quickstart), *cli, "--json")
    assert code == 0, out
    call_code, call_out = pyclan("-C", str(quickstart), "api", "call", name, "--args", json.dumps(args))
    envelope = json.loads(call_out)
    assert call_code == 0 and envelope["status"] == "success", envelope
    assert json.loads(out) == envelope["data"]


def test_flake_option_on_the_subcommand(quickstart: Path) -> None:
    """`-C DIR` works after the subcommand as well as before it (Clan's habit)."""
    _, before = pyclan("-C", str(quickstart), "machines", "list", "--json")
    _, after = pyclan("machines", "list", "--json", "-C", str(quickstart))
    _, flake = pyclan("machines", "list", "--flake", str(quickstart), "--json")
    assert before == after == flake
    assert [m["name"] for m in json.loads(after)] == ["backup-server", "fred-laptop", "sally-laptop"]


def test_tags_take_several_values_or_repeat(quickstart: Path) -> None:
    _, several = pyclan("-C", str(quickstart), "machines", "list", "--tags", "laptop", "all", "--json")
    _, repeated = pyclan("-C", str(quickstart), "machines", "list", "--tags", "laptop", "--tags", "all", "--json")
    assert several == repeated
    assert [m["name"] for m in json.loads(several)] == ["fred-laptop", "sally-laptop"]


def test_unknown_tag_says_did_you_mean(quickstart: Path) -> None:
    code, out = pyclan("-C", str(quickstart), "machines", "list", "--tags", "laptp", "--json")
    assert code == 1
    (problem,) = json.loads(out)["errors"]
    assert problem["kind"] == "unknown-tag" and problem["hint"] == "did you mean 'laptop'?"


def test_errors_are_json_with_json_and_text_without(quickstart: Path) -> None:
    code, out = pyclan("-C", str(quickstart), "machines", "config", "fred-laptp", "--json")
    assert code == 1
    assert json.loads(out)["errors"][0]["hint"] == "did you mean 'fred-laptop'?"
    result = CliRunner().invoke(app, ["-C", str(quickstart), "machines", "config", "fred-laptp"])
    assert result.exit_code == 1 and "no machine named 'fred-laptp' in the inventory" in result.stderr


def test_version_and_completion_are_offered() -> None:
    code, out = pyclan("--version")
    assert code == 0 and out.startswith("pyclan ")
    _, helptext = pyclan("--help")
    assert "--install-completion" in helptext
    for verb in ("check", "machines", "vars", "hosts", "inputs", "api"):
        assert verb in helptext


def test_pretty_output_only_when_asked(quickstart: Path) -> None:
    _, compact = pyclan("-C", str(quickstart), "show", "--json")
    _, pretty = pyclan("--pretty", "-C", str(quickstart), "show", "--json")
    assert "\n" not in compact.strip() and "\n  " in pretty
    assert json.loads(compact) == json.loads(pretty)


def test_hosts_down_all_selects_like_hosts_up_all(quickstart: Path) -> None:
    """`--all` means every inventory machine for `up` and `down` alike (names add to it), and
    both take `-C`; the selection is one function of the API."""
    from pyclan.api.hosts import selected_machines

    for verb in ("up", "down"):
        helptext = CliRunner().invoke(app, ["hosts", verb, "--help"]).stdout
        assert "--all" in helptext and "--flake" in helptext and "every machine of the inventory" in helptext
    everyone = ["backup-server", "fred-laptop", "sally-laptop"]
    assert selected_machines(None, True, str(quickstart)) == everyone
    assert selected_machines(["sally-laptop"], True, str(quickstart)) == ["sally-laptop", *everyone[:2]]
    assert selected_machines(["fred-laptop", "fred-laptop"], False, None) == ["fred-laptop"]


def test_shell_completion_lists_commands_loaded_on_demand() -> None:
    result = CliRunner().invoke(
        app, [], env={"_PYCLAN_COMPLETE": "complete_bash", "COMP_WORDS": "pyclan machines up", "COMP_CWORD": "2"},
        prog_name="pyclan",
    )  # fmt: skip
    assert "update" in result.stdout


def _leaf_commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        if cmd is None or cmd.hidden:
            continue
        if hasattr(cmd, "list_commands"):
            out += _leaf_commands(cmd, (*prefix, name))
        else:
            out.append(((*prefix, name), cmd))
    return out


def test_every_clan_command_takes_flake_and_every_listing_json() -> None:
    """Clan's habit: `-C/--flake DIR` on each subcommand; one `--json` option for all."""
    import typer

    root = typer.main.get_command(app)
    commands = _leaf_commands(root)
    assert len(commands) >= 28
    no_clan = {("hosts", "status"), ("api", "list"), ("api", "call"), ("init",),
               ("inventory", "schema")}  # fmt: skip
    for path, cmd in commands:
        options = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
        if path not in no_clan:
            assert {"-C", "--flake"} <= options, path
        if path != ("ssh",):
            assert "--json" in options, path
