"""Git inputs end to end: real repositories, file:// and git:// (a real git daemon), clan.lock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from git_repos import GitDaemon, MakeRepo, Repo, git, run_pyclan, service_code, write_clan

from pyclan.clan import open_clan
from pyclan.errors import ClanError
from pyclan.inputs import InputSet, LockFile, plan_update

SEED = """\
[meta]
name = "seed"

[machines.jon]

[inputs.libstd]
url = "{url}"

[instances.foo]
module.input = "libstd"
module.name = "mod-A"
roles.default.machines.jon = {{}}
"""


def seed_clan(root: Path, url: str) -> Path:
    return write_clan(root, SEED.format(url=url))


def description(clan_dir: Path, instance: str = "foo") -> str:
    """The loaded service's description: the test services carry their version in it."""
    return str(open_clan(clan_dir, {}).resolved.instances[instance].service.description)


def lock_of(clan_dir: Path) -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads((clan_dir / "clan.lock").read_text())["inputs"]
    return data


def test_seed_example_resolves_end_to_end_with_the_cli(tmp_path: Path, make_repo: MakeRepo) -> None:
    libstd = make_repo("libstd", {"mod_A": "mod-A"})
    clan = seed_clan(tmp_path / "clan", f"{libstd.file_url}?ref=main")

    result = run_pyclan("-C", str(clan), "inventory", "resolve", "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["machines"]["jon"]["instances"]["foo"] == {
        "service": "mod-A",
        "input": "libstd",
        "roles": {"default": {"settings": {}}},
    }
    assert data["members"]["foo"] == {"default": ["jon"]}
    # the lock was created on first use, and the user was told
    assert "locked input 'libstd'" in result.stderr
    assert lock_of(clan)["libstd"] == {
        "type": "git",
        "url": f"{libstd.file_url}?ref=main",
        "rev": libstd.head(),
        "hash": lock_of(clan)["libstd"]["hash"],
    }
    assert lock_of(clan)["libstd"]["hash"].startswith("sha256-")
    # the fetched tree lives in the cache, outside the clan directory
    assert not any(p.name == "repo.git" for p in clan.rglob("*"))

    # services list shows where the service comes from
    listed = run_pyclan("-C", str(clan), "services", "list", "--json")
    assert listed.code == 0, listed.stderr
    rows = [s for s in json.loads(listed.stdout) if s["input"] == "libstd"]
    assert [(s["name"], s["roles"]) for s in rows] == [("mod-A", ["default"])]
    assert libstd.head() in rows[0]["origin"]

    # inputs list shows kind, lock and services
    inputs = run_pyclan("-C", str(clan), "inputs", "list", "--json")
    assert inputs.code == 0, inputs.stderr
    info = {row["name"]: row for row in json.loads(inputs.stdout)}
    assert info["libstd"]["kind"] == "git"
    assert info["libstd"]["locked"]["rev"] == libstd.head()
    assert info["libstd"]["services"] == ["mod-A"]
    assert info["clan-core"]["kind"] == "bundled"
    table = run_pyclan("-C", str(clan), "inputs", "list")
    assert table.code == 0
    assert "libstd" in table.stdout and libstd.head()[:12] in table.stdout


def test_moved_branch_changes_nothing_until_update(
    tmp_path: Path, make_repo: MakeRepo, isolated_git: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    libstd = make_repo("libstd", {"mod_A": "mod-A"}, marker="v1")
    first = libstd.head()
    clan = seed_clan(tmp_path / "clan", f"{libstd.file_url}?ref=main")
    assert description(clan) == "v1"
    assert "locked input 'libstd'" in capsys.readouterr().err

    libstd.service("mod_A", "mod-A", marker="v2")
    libstd.write("services/mod_B.py", service_code("mod-B"))
    second = libstd.commit("v2 and mod-B")
    assert second != first

    # the lock still names the first commit: nothing changes, no note about locking
    assert description(clan) == "v1"
    assert lock_of(clan)["libstd"]["rev"] == first
    assert "locked input" not in capsys.readouterr().err

    # the locked commit is cached: no access to the repository is needed any more
    hidden = libstd.path.with_name("hidden")
    libstd.path.rename(hidden)
    assert description(clan) == "v1"
    with pytest.raises(ClanError) as info:  # but an update has to reach it
        plan_update(InputSet(clan, open_clan(clan, {}).loaded.inventory.inputs, {}))
    assert info.value.problems[0].path == "inputs.libstd.url"
    assert "fetching 'main'" in info.value.problems[0].message
    hidden.rename(libstd.path)

    inputs = InputSet(clan, open_clan(clan, {}).loaded.inventory.inputs, {})
    plan = plan_update(inputs)
    [update] = plan.updates
    assert (update.old and update.old.rev, update.new.rev) == (first, second)
    assert [(c.status, c.path, c.added, c.deleted) for c in update.changes] == [
        ("M", "services/mod_A.py", 2, 2),  # the marker is in two lines
        ("A", "services/mod_B.py", len(service_code("mod-B").splitlines()), 0),
    ]
    assert update.commits == [f"{second[:7]} v2 and mod-B"]
    assert lock_of(clan)["libstd"]["rev"] == first  # planning writes nothing
    plan.apply()
    assert lock_of(clan)["libstd"]["rev"] == second
    assert description(clan) == "v2"
    assert sorted(open_clan(clan, {}).registry.providers["libstd"].names()) == ["mod-A", "mod-B"]
    # both commits are checked out side by side in the cache
    assert {p.name for p in isolated_git.glob("inputs/*/*") if p.is_dir()} >= {first, second}


def test_update_cli_shows_changes_before_writing(tmp_path: Path, make_repo: MakeRepo) -> None:
    libstd = make_repo("libstd", {"mod_A": "mod-A"})
    first = libstd.head()
    clan = seed_clan(tmp_path / "clan", f"{libstd.file_url}?ref=main")
    assert run_pyclan("-C", str(clan), "inputs", "update").code == 0
    assert lock_of(clan)["libstd"]["rev"] == first
    unchanged = run_pyclan("-C", str(clan), "inputs", "update", "libstd")
    assert "unchanged" in unchanged.stdout and "up to date" in unchanged.stdout

    libstd.service("mod_A", "mod-A", marker="v2")
    (libstd.path / "README.md").unlink()
    second = libstd.commit("second")

    dry = run_pyclan("-C", str(clan), "inputs", "update", "--dry-run")
    assert dry.code == 0, dry.stderr
    assert f"{first[:12]} → {second[:12]}" in dry.stdout
    assert "dry run" in dry.stdout
    assert lock_of(clan)["libstd"]["rev"] == first

    real = run_pyclan("-C", str(clan), "inputs", "update", "libstd")
    assert real.code == 0, real.stderr
    out = real.stdout
    assert f"{first[:12]} → {second[:12]}" in out
    assert "D README.md" in out and "| +0 -1" in out
    assert "M services/mod_A.py" in out
    assert out.index("services/mod_A.py") < out.index("wrote clan.lock")
    assert lock_of(clan)["libstd"]["rev"] == second

    as_json = run_pyclan("-C", str(clan), "inputs", "update", "--json")
    assert json.loads(as_json.stdout)["changed"] is False

    unknown = run_pyclan("-C", str(clan), "inputs", "update", "libstdd")
    assert unknown.code == 1
    assert "declares no input 'libstdd'" in unknown.stderr and "did you mean 'libstd'" in unknown.stderr


def test_tampered_cache_is_refused(tmp_path: Path, make_repo: MakeRepo, isolated_git: Path) -> None:
    libstd = make_repo("libstd", {"mod_A": "mod-A"})
    clan = seed_clan(tmp_path / "clan", f"{libstd.file_url}?ref=main")
    assert description(clan) == "v1"
    [checkout] = [p for p in isolated_git.glob(f"inputs/*/{libstd.head()}")]

    # stale bytecode is dropped, not trusted (and not part of the hash)
    (checkout / "services" / "__pycache__").mkdir()
    (checkout / "services" / "__pycache__" / "mod_A.cpython-311.pyc").write_bytes(b"evil")
    assert description(clan) == "v1"
    assert not (checkout / "services" / "__pycache__").exists()

    with (checkout / "services" / "mod_A.py").open("a") as handle:
        handle.write("import os  # injected\n")
    with pytest.raises(ClanError) as info:
        open_clan(clan, {}).resolved  # noqa: B018 - resolving is the action under test
    problem = info.value.problems[0]
    assert problem.kind == "input-error"
    assert problem.file == "clan.lock"
    assert "has been modified" in problem.message and "Refusing to load it" in problem.message
    assert str(checkout) in (problem.hint or "") and "pyclan inputs update libstd" in (problem.hint or "")

    cli = run_pyclan("-C", str(clan), "inventory", "resolve", "--json")
    assert cli.code == 1
    assert json.loads(cli.stdout)["errors"][0]["kind"] == "input-error"

    # `inputs update` checks the commit out afresh, which repairs the cache
    assert run_pyclan("-C", str(clan), "inputs", "update").code == 0
    assert "injected" not in (checkout / "services" / "mod_A.py").read_text()
    assert description(clan) == "v1"

    # so does deleting the folder, as the hint says
    (checkout / "services" / "mod_A.py").write_text("raise SystemExit('evil')\n")
    with pytest.raises(ClanError):
        open_clan(clan, {}).resolved  # noqa: B018
    shutil.rmtree(checkout)
    assert description(clan) == "v1"


def test_edited_lock_hash_is_refused(tmp_path: Path, make_repo: MakeRepo, isolated_git: Path) -> None:
    libstd = make_repo("libstd", {"mod_A": "mod-A"})
    clan = seed_clan(tmp_path / "clan", f"{libstd.file_url}?ref=main")
    assert description(clan) == "v1"
    data = json.loads((clan / "clan.lock").read_text())
    data["inputs"]["libstd"]["hash"] = "sha256-" + "A" * 43 + "="
    (clan / "clan.lock").write_text(json.dumps(data))
    shutil.rmtree(isolated_git)  # a fresh machine: fetched again, then checked
    with pytest.raises(ClanError) as info:
        open_clan(clan, {}).resolved  # noqa: B018
    assert "was fetched, but its content hash is" in info.value.problems[0].message


def test_refs_tags_revs_and_a_changed_declaration(tmp_path: Path, make_repo: MakeRepo) -> None:
    libstd = make_repo("libstd", {"mod_A": "mod-A"}, marker="v1")
    v1 = libstd.head()
    git(libstd.path, "tag", "-a", "v1.0", "-m", "release 1.0")  # annotated: must be peeled to the commit
    libstd.service("mod_A", "mod-A", marker="dev")
    git(libstd.path, "checkout", "-q", "-b", "feature")
    feature = libstd.commit("feature work")
    git(libstd.path, "checkout", "-q", "main")

    clan = seed_clan(tmp_path / "clan", f"{libstd.file_url}?ref=v1.0")
    assert description(clan) == "v1"
    assert lock_of(clan)["libstd"]["rev"] == v1

    notes: list[str] = []
    text = (clan / "clan.toml").read_text().replace("?ref=v1.0", "?ref=feature")
    (clan / "clan.toml").write_text(text)
    inputs = InputSet(clan, open_clan(clan, {}).loaded.inventory.inputs, {}, notify=notes.append)
    assert inputs.resolve("libstd").entry is not None
    assert lock_of(clan)["libstd"] == {
        "type": "git",
        "url": f"{libstd.file_url}?ref=feature",
        "rev": feature,
        "hash": lock_of(clan)["libstd"]["hash"],
    }
    assert notes and "declaration changed" in notes[0]

    pinned = f"{libstd.file_url}?rev={v1}"
    (clan / "clan.toml").write_text(text.replace("?ref=feature", f"?rev={v1}"))
    assert description(clan) == "v1"
    assert lock_of(clan)["libstd"]["url"] == pinned
    # a pinned rev does not move on update
    plan = plan_update(InputSet(clan, open_clan(clan, {}).loaded.inventory.inputs, {}))
    assert not plan.changed

    missing = make_repo("other", {"mod_A": "mod-A"})
    (clan / "clan.toml").write_text(text.replace("?ref=feature", "?ref=no-such-branch").replace(
        str(libstd.path), str(missing.path)
    ))
    with pytest.raises(ClanError) as info:
        open_clan(clan, {}).resolved  # noqa: B018
    problem = info.value.problems[0]
    assert problem.path == "inputs.libstd.url"
    assert "no-such-branch" in problem.message


def test_git_daemon_transport(tmp_path: Path, make_repo: MakeRepo, git_daemon: GitDaemon) -> None:
    served = make_repo("libstd", {"mod_A": "mod-A"}, marker="v1", base=git_daemon.base)
    first = served.head()
    clan = seed_clan(tmp_path / "clan", git_daemon.url("libstd") + "?ref=main")
    result = run_pyclan("-C", str(clan), "inventory", "resolve", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["machines"]["jon"]["instances"]["foo"]["input"] == "libstd"
    assert lock_of(clan)["libstd"]["rev"] == first

    served.service("mod_A", "mod-A", marker="v2")
    second = served.commit("v2 over git://")
    assert description(clan) == "v1"
    update = run_pyclan("-C", str(clan), "inputs", "update")
    assert update.code == 0, update.stderr
    assert f"{first[:12]} → {second[:12]}" in update.stdout
    assert "v2 over git://" in update.stdout
    assert description(clan) == "v2"

    # another machine (empty cache) gets exactly the locked commit, not the branch's new head
    served.service("mod_A", "mod-A", marker="v3")
    served.commit("v3, not locked")
    other_machine = {"PYCLAN_CACHE_DIR": str(tmp_path / "other-machine-cache")}
    listed = run_pyclan("-C", str(clan), "services", "list", "--json", env=other_machine)
    assert listed.code == 0, listed.stderr
    [row] = [s for s in json.loads(listed.stdout) if s["input"] == "libstd"]
    assert row["description"] == "v2"
    assert second in row["origin"]
    assert lock_of(clan)["libstd"]["rev"] == second

    # a commit pinned by rev is fetched over git:// into an empty cache
    pinned = tmp_path / "pinned"
    seed_clan(pinned, git_daemon.url("libstd") + f"?rev={first}")
    fresh_cache = {"PYCLAN_CACHE_DIR": str(tmp_path / "fresh-cache")}
    again = run_pyclan("-C", str(pinned), "inventory", "resolve", "--json", env=fresh_cache)
    assert again.code == 0, again.stderr
    assert lock_of(pinned)["libstd"]["rev"] == first


def test_two_inputs_with_the_same_module_name_are_two_services(
    tmp_path: Path, make_repo: MakeRepo, git_daemon: GitDaemon
) -> None:
    liba = make_repo("liba", {"mod_A": "mod-A"}, marker="from liba")
    make_repo("libb", {"mod_A": "mod-A"}, marker="from libb", base=git_daemon.base)
    clan = write_clan(
        tmp_path / "clan",
        f"""\
        [meta]
        name = "two"
        [machines.jon]
        [inputs.liba]
        url = "{liba.file_url}?ref=main"
        [inputs.libb]
        url = "{git_daemon.url("libb")}"
        [instances.a1]
        module = {{ input = "liba", name = "mod-A" }}
        roles.default.machines.jon = {{}}
        [instances.a2]
        module = {{ input = "liba", name = "mod-A" }}
        roles.default.machines.jon = {{}}
        [instances.b1]
        module = {{ input = "libb", name = "mod-A" }}
        roles.default.machines.jon = {{}}
        """,
    )
    resolved = open_clan(clan, {}).resolved
    groups = resolved.services()
    assert sorted(groups) == ["liba-mod-A", "libb-mod-A"]
    assert [i.name for i in groups["liba-mod-A"][1]] == ["a1", "a2"]
    assert groups["liba-mod-A"][0].description == "from liba"
    assert groups["libb-mod-A"][0].description == "from libb"
    assert groups["liba-mod-A"][0] is not groups["libb-mod-A"][0]

    data = json.loads(run_pyclan("-C", str(clan), "inventory", "resolve", "--json").stdout)
    assert {i: e["input"] for i, e in data["machines"]["jon"]["instances"].items()} == {
        "a1": "liba",
        "a2": "liba",
        "b1": "libb",
    }
    listed = json.loads(run_pyclan("-C", str(clan), "services", "list", "--json").stdout)
    assert sorted((s["input"], s["description"]) for s in listed if s["name"] == "mod-A") == [
        ("liba", "from liba"),
        ("libb", "from libb"),
    ]
    assert sorted(LockFile.load(clan).entries) == ["liba", "libb"]


def test_override_input_uses_a_folder_and_leaves_the_lock_alone(tmp_path: Path, make_repo: MakeRepo) -> None:
    libstd = make_repo("libstd", {"mod_A": "mod-A"}, marker="v1")
    clan = seed_clan(tmp_path / "clan", f"{libstd.file_url}?ref=main")
    assert description(clan) == "v1"
    locked = (clan / "clan.lock").read_bytes()

    # uncommitted work in a local checkout
    checkout = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(libstd.path), str(checkout))
    Repo(checkout).service("mod_A", "mod-A", marker="work in progress")
    assert open_clan(clan, {"libstd": checkout}).resolved.instances["foo"].service.description == "work in progress"

    cli = run_pyclan("--override-input", "libstd", str(checkout), "-C", str(clan), "services", "list", "--json")
    assert cli.code == 0, cli.stderr
    [row] = [s for s in json.loads(cli.stdout) if s["input"] == "libstd"]
    assert row["description"] == "work in progress"
    assert row["origin"].startswith(str(checkout))
    listing = {r["name"]: r for r in json.loads(
        run_pyclan("--override-input", "libstd", str(checkout), "-C", str(clan), "inputs", "list", "--json").stdout
    )}
    assert listing["libstd"]["overridden"] == str(checkout)
    assert (clan / "clan.lock").read_bytes() == locked
    # no `__pycache__` is written into the override folder
    assert not (checkout / "services" / "__pycache__").exists()

    # an override for an input the clan does not declare is reported and ignored
    typo = run_pyclan("--override-input", "libstdd", str(checkout), "-C", str(clan), "inventory", "resolve")
    assert typo.code == 0
    assert "declares no input 'libstdd'" in typo.stderr and "did you mean 'libstd'" in typo.stderr

    gone = run_pyclan("--override-input", "libstd", str(tmp_path / "nope"), "-C", str(clan), "inventory", "resolve")
    assert gone.code == 1
    assert "does not exist" in gone.stderr
