"""Attacks through a clan's input (issue 10, items 3, 7 and 10): each test performs the attack and
checks that it fails with a clear error and leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyclan.clan import open_clan
from pyclan.deploy.shell import openssh_argv
from pyclan.deploy.targets import resolve_target
from pyclan.deploy.transport import HostKeyCheck, Target, parse_target
from pyclan.errors import ClanError


@pytest.fixture
def env(tmp_path: Path) -> Path:
    """The test's folder (no local hosts, caches and keys: tests/conftest.py's isolated_environment)."""
    return tmp_path


def pyclan(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(root), *args],
        capture_output=True, text=True, check=False, env=dict(os.environ), timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def write_clan(root: Path, toml: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "clan.toml").write_text(textwrap.dedent(toml))
    return root


# -- item 3: no SSH option injection ------------------------------------------------------------


def _proxy_command(marker: Path) -> str:
    """An ssh option that runs a local command (no spaces: ${IFS} is expanded by ssh's shell)."""
    return f"-oProxyCommand=touch${{IFS}}{marker}"


def test_item3_target_host_option_injection(env: Path) -> None:
    marker = env / "pwned"
    attack = _proxy_command(marker)
    root = write_clan(env / "clan", f"""
        [meta]
        name = "attack"
        [machines.foo]
        deploy.targetHost = "{attack}"
        [machines.bar]
        deploy.targetHost = "{attack}@example.org"
        [machines.baz]
        deploy.targetHost = "root@[{attack}]:22"
        [machines.qux]
        deploy.targetHost = "root@host\\u001b[2J"
    """)
    check = pyclan(root, "check")
    assert check.returncode == 1
    for machine, what in (("foo", "the host"), ("bar", "the user"), ("baz", "the host"), ("qux", "control character")):
        line = next(line for line in check.stderr.splitlines() if f"machines.{machine}.deploy.targetHost" in line)
        assert "clan.toml" in line and "unsafe target host" in line and what in line, check.stderr
    assert "[user@]host[:port]" in check.stderr  # the hint
    # every command that would connect stops at load time, before ssh is ever started
    for args in (("ssh", "foo"), ("ssh", "foo", "-c", "true"), ("machines", "update", "foo")):
        proc = pyclan(root, *args)
        assert proc.returncode == 1 and "machines.foo.deploy.targetHost" in proc.stderr, proc.stderr
    assert not marker.exists()


def test_item3_target_host_option_injection_in_inventory_json(env: Path) -> None:
    root = env / "clan"
    root.mkdir()
    inventory = {"meta": {"name": "attack"}, "machines": {"foo": {"deploy": {"targetHost": "root@a b"}}}}
    (root / "inventory.json").write_text(json.dumps(inventory))
    with pytest.raises(ClanError) as info:
        open_clan(root, {})
    [problem] = info.value.problems
    assert (problem.kind, problem.file) == ("inventory-type", "inventory.json")
    assert problem.path == "machines.foo.deploy.targetHost"
    assert "whitespace" in problem.message


def test_item3_cli_target_host_option_injection(env: Path) -> None:
    marker = env / "pwned"
    root = write_clan(env / "clan", """
        [meta]
        name = "attack"
        [machines.foo]
    """)
    attack = _proxy_command(marker)
    for args in (
        ("ssh", "foo", f"--target-host={attack}"),
        ("ssh", "foo", f"--target-host={attack}", "-c", "true"),
        ("machines", "update", "foo", f"--target-host={attack}"),
        ("machines", "update", "foo", f"--target-host=root@{attack}"),
    ):
        proc = pyclan(root, *args)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "unsafe target host" in proc.stdout + proc.stderr and "--target-host" in proc.stdout + proc.stderr
    before = (root / "clan.toml").read_text()
    create = pyclan(root, "machines", "create", "bar", f"--target-host={attack}")
    assert create.returncode == 1 and "machines.bar.deploy.targetHost" in create.stderr
    assert (root / "clan.toml").read_text() == before  # nothing written
    assert not marker.exists()
    with pytest.raises(ClanError) as info:
        parse_target(f"{attack}@host", "foo", "--target-host")
    assert info.value.problems[0].path == "--target-host" and "the user" in info.value.problems[0].message


def test_item3_internet_service_option_injection(env: Path) -> None:
    marker = env / "pwned"
    attack = _proxy_command(marker)
    base = """
        [meta]
        name = "attack"
        [machines.foo]
        [instances.internet]
    """
    # a leading '-' in host, user or a jump host is a settings error in `check`
    for key, value in (("host", attack), ("user", attack), ("jumphosts", [attack])):
        settings = {"host": "192.0.2.1", key: value}
        root = write_clan(env / f"clan-{key}", base + f"roles.default.machines.foo.settings = {_toml(settings)}\n")
        check = pyclan(root, "check")
        assert check.returncode == 1 and f"instances.internet.roles.default.machines.foo.settings.{key}" in (
            check.stderr
        ), check.stderr
        proc = pyclan(root, "ssh", "foo", "-c", "true")
        assert proc.returncode == 1
    # hidden behind a user part, it passes the settings' types but never reaches ssh
    for key, value, path in (
        ("host", f"root@{attack}", "roles.default.machines.foo.settings.host"),
        ("jumphosts", [f"jump@{attack}"], "roles.default.settings.jumphosts"),
    ):
        where = "roles.default.settings" if key == "jumphosts" else "roles.default.machines.foo.settings"
        toml = base + 'roles.default.machines.foo.settings.host = "192.0.2.1"\n' if key == "jumphosts" else base
        root = write_clan(env / f"clan-hidden-{key}", toml + f"{where}.{key} = {_toml(value)}\n")
        assert pyclan(root, "check").returncode == 0
        with pytest.raises(ClanError) as info:
            resolve_target(open_clan(root, {}), "foo")
        [problem] = info.value.problems  # the `peer` export names its instance (the settings are the service's)
        assert problem.path == "instances.internet" and "starts with '-'" in problem.message, (problem, path)
        proc = pyclan(root, "ssh", "foo")
        assert proc.returncode == 1 and "instances.internet" in proc.stderr and "starts with '-'" in proc.stderr
    assert not marker.exists()


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def test_item3_every_ssh_command_line_ends_options_before_the_destination(env: Path) -> None:
    target = Target(machine="foo", host="192.0.2.1", user="admin", port=2222, jump="jump@192.0.2.2")
    argv = openssh_argv(target, HostKeyCheck.STRICT, ["echo", "-n", "hi"])
    assert argv[-5:] == ["--", "admin@192.0.2.1", "echo", "-n", "hi"]
    assert argv.index("--") == len(argv) - 5  # every option comes before it
    # a target built by code (not parsed) is still checked before ssh or asyncssh sees it
    for bad in (
        Target(machine="foo", host="-oProxyCommand=x"),
        Target(machine="foo", host="h", user="-l"),
        Target(machine="foo", host="h", jump="-oProxyCommand=x"),
    ):
        with pytest.raises(ClanError, match="starts with '-'"):
            openssh_argv(bad, HostKeyCheck.STRICT)
    from pyclan.hosts import control as hosts
    from pyclan.hosts.state import HostInfo

    line = hosts.ssh_command(HostInfo("m", 1, "10.231.25.11", "", True, None), "true")
    assert line[-3:] == ["--", "root@10.231.25.11", "true"]


def test_item3_asyncssh_connect_refuses_an_option_like_target(env: Path) -> None:
    import asyncio

    from pyclan.deploy.transport import connect

    marker = env / "pwned"
    with pytest.raises(ClanError, match="starts with '-'"):
        asyncio.run(connect(Target(machine="foo", host=_proxy_command(marker))))
    assert not marker.exists()


def test_item3_a_host_name_dns_cannot_encode_is_a_clean_error(env: Path) -> None:
    import asyncio

    from pyclan.deploy.transport import connect

    with pytest.raises(ClanError, match="cannot connect"):
        asyncio.run(connect(Target(machine="foo", host="a" * 70 + ".example"), timeout=5))


# -- item 10 (loading): bad input stays cheap -------------------------------------------------


def _limited(cmd: list[str], limit: int = 1 << 30) -> subprocess.CompletedProcess[str]:
    """Run `cmd` with at most `limit` bytes of address space (a blow-up fails instead of swapping)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        cmd, capture_output=True, text=True, check=False, env=dict(os.environ), timeout=300, preexec_fn=cap
    )


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return _limited([sys.executable, "-c", "from pyclan.cli.main import run; run()", "-C", str(root), "check"])


def _load_problem(tmp_path: Path, name: str, text: str) -> ClanError:
    root = tmp_path / "clan"
    root.mkdir(exist_ok=True)
    (root / name).write_text(text)
    with pytest.raises(ClanError) as info:
        open_clan(root, {})
    return info.value


def test_item10_deep_dotted_keys_are_refused_before_parsing(tmp_path: Path) -> None:
    root = tmp_path / "clan"
    root.mkdir()
    deep = "tags." + ".".join(["a"] * 20_000) + " = 1\n"
    (root / "clan.toml").write_text('[meta]\nname = "x"\n[machines.foo]\n' + deep)
    assert (root / "clan.toml").stat().st_size < 41_000
    proc = _check(root)  # took 2.4 GB in tomllib before the limit
    assert proc.returncode == 1, proc.stderr
    assert "clan.toml:4: a key path of 20003 parts" in proc.stderr and "limit of 32" in proc.stderr
    assert "Traceback" not in proc.stderr
    # the header counts too: 20 + 20 parts
    header = "[" + ".".join(["h"] * 20) + "]\n" + ".".join(["k"] * 20) + " = 1\n"
    error = _load_problem(tmp_path, "clan.toml", '[meta]\nname = "x"\n' + header)
    assert error.problems[0].line == 4 and "40 parts" in error.problems[0].message


def test_item10_file_size_limit(tmp_path: Path) -> None:
    from pyclan.inventory.sources import MAX_JSON_BYTES, MAX_TOML_BYTES

    toml = '[meta]\nname = "x"\n' + "# padding\n" * (MAX_TOML_BYTES // 10 + 1)
    [problem] = _load_problem(tmp_path, "clan.toml", toml).problems
    assert (problem.kind, problem.file) == ("parse-error", "clan.toml") and "too large" in problem.message
    (tmp_path / "clan" / "clan.toml").unlink()
    json_text = '{"meta": {"name": "x"}, "machines": {}}' + " " * MAX_JSON_BYTES
    [problem] = _load_problem(tmp_path, "inventory.json", json_text).problems
    assert (problem.kind, problem.file) == ("parse-error", "inventory.json") and "too large" in problem.message


def test_item10_nesting_limit(tmp_path: Path) -> None:
    deep_json = "[" * 100 + "]" * 100
    text = '{"meta": {"name": "x"}, "instances": {"i": {"roles": {"r": {"settings": {"a": ' + deep_json + "}}}}}}"
    [problem] = _load_problem(tmp_path, "inventory.json", text).problems
    assert problem.kind == "parse-error" and "nested more than 64 levels" in problem.message
    assert problem.path.startswith("instances.i.roles.r.settings.a.0.0")
    (tmp_path / "clan" / "inventory.json").unlink()
    inline = "x = " + "[" * 100 + "]" * 100 + "\n"
    [problem] = _load_problem(tmp_path, "clan.toml", '[meta]\nname = "x"\n' + inline).problems
    assert problem.kind == "parse-error" and "nested more than 64 levels" in problem.message
    # 20,000 levels of JSON: a clean error too, in bounded memory
    root = tmp_path / "deep-json"
    root.mkdir()
    (root / "inventory.json").write_text('{"meta": {"name": "x"}, "modules": ' + "[" * 20_000 + "]" * 20_000 + "}")
    proc = _check(root)
    assert proc.returncode == 1 and "inventory.json" in proc.stderr and "Traceback" not in proc.stderr


def test_item10_huge_integers(tmp_path: Path) -> None:
    digits = "9" * 5000
    text = f'[meta]\nname = "x"\n[machines.a]\ninstalledAt = {digits}\n'
    [problem] = _load_problem(tmp_path, "clan.toml", text).problems
    assert (problem.kind, problem.line) == ("parse-error", 4) and "out of range" in problem.message
    (tmp_path / "clan" / "clan.toml").unlink()
    for number in (digits, str(1 << 64), str(-(1 << 63) - 1)):
        text = '{"meta": {"name": "x"}, "machines": {"a": {"installedAt": ' + number + "}}}"
        [problem] = _load_problem(tmp_path, "inventory.json", text).problems
        assert (problem.kind, problem.path) == ("parse-error", "machines.a.installedAt"), problem
        assert "out of range" in problem.message and "64-bit" in problem.message
    (tmp_path / "clan" / "inventory.json").unlink()
    text = '[meta]\nname = "x"\n[instances.i.roles.r.settings]\nbig = 18446744073709551616\n'
    [problem] = _load_problem(tmp_path, "clan.toml", text).problems
    assert problem.path == "instances.i.roles.r.settings.big" and "out of range" in problem.message
    # a hex literal converts without Python's digit limit, but could not even be printed in decimal
    text = '[meta]\nname = "x"\n[machines.a]\ninstalledAt = 0x' + "f" * 5000 + "\n"
    [problem] = _load_problem(tmp_path, "clan.toml", text).problems
    assert problem.path == "machines.a.installedAt"
    assert "0xffff" in problem.message and "out of range" in problem.message


def test_item10_lone_json_surrogates(tmp_path: Path, env: Path) -> None:
    for where, text in (
        ("machines.a.description", '{"meta": {"name": "x"}, "machines": {"a": {"description": "bad \\ud800"}}}'),
        ("machines.a.tags", '{"meta": {"name": "x"}, "machines": {"a": {"tags": ["\\udc00"]}}}'),
        ("tags", '{"meta": {"name": "x"}, "tags": {"\\ud83d": []}}'),
    ):
        [problem] = _load_problem(tmp_path, "inventory.json", text).problems
        assert problem.kind == "parse-error" and problem.path.startswith(where), problem
        assert "lone surrogate" in problem.message
    # a proper pair is one character and loads
    (tmp_path / "clan" / "inventory.json").write_text(
        '{"meta": {"name": "x"}, "machines": {"a": {"description": "\\ud83d\\ude00"}}}'
    )
    assert open_clan(tmp_path / "clan", {}).loaded.inventory.machines["a"].description == "\U0001f600"


def test_item10_duplicate_json_keys(tmp_path: Path) -> None:
    text = '{"meta": {"name": "x"}, "machines": {"a": {"tags": ["one"]}, "a": {"tags": ["two"]}}}'
    [problem] = _load_problem(tmp_path, "inventory.json", text).problems
    assert (problem.kind, problem.path, problem.file) == ("parse-error", "machines.a", "inventory.json")
    assert "appears twice" in problem.message
    text = '{"meta": {"name": "x"}, "meta": {"name": "y"}}'
    [problem] = _load_problem(tmp_path, "inventory.json", text).problems
    assert problem.path == "meta" and "appears twice" in problem.message


# -- bugs the fuzz campaign found (benchmarks/fuzz_campaign.py) -------------------------------


def test_fuzz_a_generator_name_too_long_for_a_file_is_a_clean_build_error(env: Path) -> None:
    """Case 3361 of seed 0: a wifi network named by 4,400 digits made `build` raise OSError."""
    from pyclan.build.generation import build

    root = write_clan(env / "clan", f"""
        [meta]
        name = "long"
        [machines.laptop]
        [instances.wifi]
        roles.default.machines.laptop = {{}}
        roles.default.settings.networks.{"9" * 400} = {{}}
    """)
    (root / "vars" / "shared").mkdir(parents=True)  # a store exists, so the secret's path is looked up
    clan = open_clan(root, {})
    with pytest.raises(ClanError) as info:
        build(clan, "laptop", write=False)
    [problem] = info.value.problems
    assert problem.kind == "vars-error" and "File name too long" in problem.message
    assert problem.path.startswith("wifi.999") and "255 bytes" in (problem.hint or "")
