"""Path inputs, package inputs, the clan-core override and resolution errors (R2.2, R3.1)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from git_repos import MakeRepo, run_pyclan, service_code, write_clan

from pyclan.clan import open_clan
from pyclan.errors import ClanError, Problem
from pyclan.inputs import InputSet, plan_update


def problems(clan_dir: Path, overrides: dict[str, Path] | None = None) -> list[Problem]:
    with pytest.raises(ClanError) as info:
        open_clan(clan_dir, overrides or {}).resolved  # noqa: B018 - resolving is the action under test
    return info.value.problems


def one_instance(input_line: str, name: str, inputs: str = "") -> str:
    return f"""\
        [meta]
        name = "t"
        [machines.jon]
        {textwrap.dedent(inputs)}
        [instances.foo]
        {input_line}
        module.name = "{name}"
        roles.default.machines.jon = {{}}
        """


# -- path inputs ------------------------------------------------------------------------------


def test_path_input_is_locked_by_content(tmp_path: Path) -> None:
    lib = tmp_path / "libfoo"
    (lib / "services").mkdir(parents=True)
    (lib / "services" / "mod_a.py").write_text(service_code("mod-a", "v1"))
    (lib / "notes.txt").write_text("outside services/: not hashed\n")
    clan = write_clan(
        tmp_path / "clan", one_instance('module.input = "local"', "mod-a", '[inputs.local]\npath = "../libfoo"')
    )
    notes: list[str] = []
    specs = open_clan(clan, {}).loaded.inventory.inputs
    resolved = InputSet(clan, specs, {}, notify=notes.append).resolve("local")
    assert resolved.provider.names() == ["mod-a"]
    assert resolved.entry is not None and resolved.entry.kind == "path"
    assert "locked input 'local'" in notes[0]
    lock = json.loads((clan / "clan.lock").read_text())["inputs"]["local"]
    assert lock["type"] == "path" and lock["path"] == "../libfoo" and lock["hash"].startswith("sha256-")
    assert open_clan(clan, {}).resolved.instances["foo"].service.description == "v1"
    # importing never leaves bytecode in the input's folder
    assert not (lib / "services" / "__pycache__").exists()

    (lib / "notes.txt").write_text("changed, but not part of what pyclan loads\n")
    assert open_clan(clan, {}).resolved.instances["foo"].service.description == "v1"

    (lib / "services" / "mod_a.py").write_text(service_code("mod-a", "v2"))
    [problem] = problems(clan)
    assert problem.kind == "input-error" and problem.path == "inputs.local.path"
    assert "changed since it was locked" in problem.message
    assert "pyclan inputs update local" in (problem.hint or "")

    update = run_pyclan("-C", str(clan), "inputs", "update", "local")
    assert update.code == 0, update.stderr
    assert "local (path)" in update.stdout and "→" in update.stdout
    assert open_clan(clan, {}).resolved.instances["foo"].service.description == "v2"

    (clan / "clan.toml").write_text(one_instance('module.input = "local"', "mod-a", '[inputs.local]\npath = "../nope"'))
    [problem] = problems(clan)
    assert problem.path == "inputs.local.path" and "does not exist" in problem.message


# -- package inputs ---------------------------------------------------------------------------


def make_distribution(site: Path, dist: str, version: str, module: str, entry_points: dict[str, str]) -> None:
    """A real installed distribution: a `*.dist-info` folder that importlib.metadata reads."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = ["[pyclan.services]", *(f"{name} = {value}" for name, value in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (site / module).mkdir(exist_ok=True)
    (site / module / "__init__.py").write_text("")


def test_package_input_by_entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    module = f"libpkg_{tmp_path.name.replace('-', '_')}"  # unique per test: modules stay imported
    make_distribution(
        site,
        "libpkg-services",
        "1.0",
        module,
        {"mod-X": f"{module}.x:service", "mod_y": f"{module}.y", "broken": f"{module}.broken:service"},
    )
    (site / module / "x.py").write_text(service_code("mod-X", "from a package"))
    (site / module / "y.py").write_text(service_code("mod-y", "a module with `service`"))
    (site / module / "broken.py").write_text("service = 42\n")
    monkeypatch.syspath_prepend(str(site))

    clan = write_clan(
        tmp_path / "clan",
        one_instance('module.input = "pkg"', "mod-X", '[inputs.pkg]\npackage = "libpkg-services"'),
    )
    resolved = open_clan(clan, {}).resolved
    assert resolved.instances["foo"].service.description == "from a package"
    assert resolved.instances["foo"].group == "pkg-mod-X"
    registry = open_clan(clan, {}).registry
    assert registry.providers["pkg"].names() == ["broken", "mod-X", "mod-y"]
    assert registry.resolve("mod_y", "pkg", "instances.bar").description == "a module with `service`"
    assert "libpkg-services==1.0" in registry.providers["pkg"].origin("mod-X")
    with pytest.raises(ClanError) as info:
        registry.resolve("broken", "pkg", "instances.bar")
    assert "must name a `Service` object" in info.value.problems[0].message
    lock = json.loads((clan / "clan.lock").read_text())["inputs"]["pkg"]
    assert lock == {"type": "package", "package": "libpkg-services", "version": "1.0"}

    # the CLI in a subprocess sees the same distribution through PYTHONPATH
    env = {"PYTHONPATH": str(site)}
    cli = run_pyclan("-C", str(clan), "inputs", "list", "--json", env=env)
    assert cli.code == 0, cli.stderr
    assert {r["name"]: r for r in json.loads(cli.stdout)}["pkg"]["services"] == ["broken", "mod-X", "mod-y"]

    # another installed version than the locked one is refused until `inputs update`
    (site / "libpkg_services-1.0.dist-info").rename(site / "libpkg_services-1.1.dist-info")
    meta = site / "libpkg_services-1.1.dist-info" / "METADATA"
    meta.write_text(meta.read_text().replace("Version: 1.0", "Version: 1.1"))
    [problem] = problems(clan)
    assert "1.1 is installed" in problem.message and "locks version 1.0" in problem.message
    plan = plan_update(InputSet(clan, open_clan(clan, {}).loaded.inventory.inputs, {}))
    assert [(u.old and u.old.version, u.new.version) for u in plan.updates] == [("1.0", "1.1")]
    plan.apply()
    assert open_clan(clan, {}).resolved.instances["foo"].service.description == "from a package"

    (clan / "clan.toml").write_text(
        one_instance('module.input = "pkg"', "mod-X", '[inputs.pkg]\npackage = "no-such-distribution-xyz"')
    )
    [problem] = problems(clan)
    assert problem.path == "inputs.pkg.package" and "is not installed" in problem.message


# -- clan-core --------------------------------------------------------------------------------


def test_clan_core_is_the_bundled_library_and_can_be_overridden(tmp_path: Path) -> None:
    toml = """\
        [meta]
        name = "t"
        [machines.jon]
        [instances.plain]
        module.name = "packages"
        roles.default.machines.jon = {}
        [instances.named]
        module = { name = "packages", input = "clan-core" }
        roles.default.machines.jon = {}
        """
    clan = write_clan(tmp_path / "clan", toml)
    resolved = open_clan(clan, {}).resolved
    bundled = resolved.instances["plain"].service
    assert resolved.instances["named"].service is bundled
    # R3.1: null and "clan-core" are different service groups, even with the same code
    assert sorted(resolved.services()) == ["<clan-core>-packages", "clan-core-packages"]
    assert not (clan / "clan.lock").exists()

    dev = tmp_path / "clan-core-dev"
    (dev / "services").mkdir(parents=True)
    (dev / "services" / "packages.py").write_text(service_code("packages", "development copy"))
    overridden = open_clan(clan, {"clan-core": dev}).resolved
    assert overridden.instances["plain"].service.description == "development copy"
    assert overridden.instances["named"].service.description == "development copy"

    # a pyclan source checkout works too: its bundled library folder is used
    checkout = tmp_path / "pyclan-checkout"
    library = checkout / "src" / "pyclan" / "services" / "library"
    library.mkdir(parents=True)
    (library / "packages.py").write_text(service_code("packages", "from a checkout"))
    cli = run_pyclan("--override-input", "clan-core", str(checkout), "-C", str(clan), "services", "list", "--json")
    assert cli.code == 0, cli.stderr
    rows = json.loads(cli.stdout)
    assert [(r["name"], r["description"]) for r in rows if r["input"] is None] == [("packages", "from a checkout")]
    listing = {r["name"]: r for r in json.loads(
        run_pyclan("--override-input", "clan-core", str(checkout), "-C", str(clan), "inputs", "list", "--json").stdout
    )}
    assert listing["clan-core"]["overridden"] == str(checkout)
    assert not (clan / "clan.lock").exists()
    assert [p.name for p in library.iterdir()] == ["packages.py"]  # no bytecode written

    # a folder of modules is used directly
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "packages.py").write_text(service_code("packages", "flat folder"))
    assert open_clan(clan, {"clan-core": flat}).resolved.instances["plain"].service.description == "flat folder"


# -- errors (R2.2) ----------------------------------------------------------------------------


def test_resolution_errors_name_the_instance(tmp_path: Path, make_repo: MakeRepo) -> None:
    lib = make_repo("libstd", {"mod_A": "mod-A", "mod_B": "mod-B"})
    empty = make_repo("empty")  # a repository without services/
    inputs = f"""\
        [inputs.libstd]
        url = "{lib.file_url}?ref=main"
        [inputs.empty]
        url = "{empty.file_url}"
        """
    clan_dir = tmp_path / "clan"

    write_clan(clan_dir, one_instance('module.input = "libsdt"', "mod-A", inputs))
    [problem] = problems(clan_dir)
    assert problem.kind == "unknown-input" and problem.path == "instances.foo.module.input"
    assert "Flake doesn't provide input with name 'libsdt'" in problem.message
    assert "- libstd" in problem.message and "- empty" in problem.message
    assert "did you mean 'libstd'" in (problem.hint or "")

    write_clan(clan_dir, one_instance('module.input = "empty"', "mod-A", inputs))
    [problem] = problems(clan_dir)
    assert problem.path == "instances.foo.module.input"
    assert "flake input 'empty' doesn't export any clan services" in problem.message
    assert "services/" in (problem.hint or "")

    write_clan(clan_dir, one_instance('module.input = "libstd"', "mod-C", inputs))
    [problem] = problems(clan_dir)
    assert problem.kind == "unknown-module" and problem.path == "instances.foo.module.name"
    assert "flake input 'libstd' doesn't provide clan-module with name 'mod-C'" in problem.message
    assert "mod-A, mod-B" in problem.message
    assert "did you mean" in (problem.hint or "")

    cli = run_pyclan("-C", str(clan_dir), "inventory", "resolve", "--json")
    assert cli.code == 1
    assert json.loads(cli.stdout)["errors"][0]["path"] == "instances.foo.module.name"

    write_clan(clan_dir, one_instance('module.input = "self"', "mod-A", '[inputs.self]\npath = "."'))
    [problem] = problems(clan_dir)
    assert problem.path == "inputs.self" and "reserved" in problem.message

    write_clan(
        clan_dir,
        one_instance('module.input = "libstd"', "mod-A", '[inputs.libstd]\nurl = "https://example.org/x"'),
    )
    [problem] = problems(clan_dir)
    assert problem.path == "inputs.libstd.url" and "unsupported input URL" in problem.message

    write_clan(
        clan_dir,
        one_instance(
            'module.input = "libstd"', "mod-A", f'[inputs.libstd]\nurl = "git+file://{tmp_path}/missing-repo"'
        ),
    )
    [problem] = problems(clan_dir)
    assert problem.path == "inputs.libstd.url" and "fetching 'HEAD'" in problem.message
    assert problem.hint


def test_inputs_are_fetched_only_when_needed(tmp_path: Path) -> None:
    clan = write_clan(
        tmp_path / "clan",
        """\
        [meta]
        name = "t"
        [machines.jon]
        [inputs.unreachable]
        url = "git+https://127.0.0.1:9/none/such?ref=main"
        [instances.hello]
        module.name = "packages"
        roles.default.machines.jon = {}
        """,
    )
    # no instance uses the input: resolving never touches the network
    assert sorted(open_clan(clan, {}).resolved.instances) == ["hello"]
    assert not (clan / "clan.lock").exists()
    listed = run_pyclan("-C", str(clan), "inputs", "list", "--json")
    assert listed.code == 1
    assert "fetching 'main'" in {r["name"]: r for r in json.loads(listed.stdout)}["unreachable"]["error"]
    assert sys.executable  # the CLI ran under this interpreter's environment
