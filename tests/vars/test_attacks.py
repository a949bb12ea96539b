"""Issue 10: attacks on the controller through the clan folder, generator scripts and races.

Each test performs the attack and asserts that it fails with a clear error (no traceback) and
leaves no side effect: nothing outside the clan is read, written or removed, and the clan's
files are as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from pyrage import x25519

from pyclan import api as clan_api
from pyclan.config.generators import Generator, VarFile
from pyclan.errors import ClanError
from pyclan.lock import clan_lock
from pyclan.vars import run
from pyclan.vars.api import decrypt_secret, get, machine_secrets
from pyclan.vars.layout import MACHINE_KEY_DIR, GenKey

from .conftest import VarsClan, pyclan_command


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry below root (symlinks as their target, never followed), .pyclan/ excluded."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel.startswith(".pyclan"):
            continue
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
        elif p.is_dir():
            out[rel] = "dir"
    return out


def outside(tmp_path: Path) -> Path:
    """A folder outside the clan with a file the attacker wants to read, overwrite or delete."""
    target = tmp_path / "outside"
    target.mkdir(exist_ok=True)
    (target / "precious").write_text("do not touch\n")
    return target


def fails(r: subprocess.CompletedProcess[bytes], *needles: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, r.stdout, err)
    assert "Traceback" not in err and "internal-error" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.fixture
def generated(vclan: VarsClan, answers: Path) -> VarsClan:
    assert vclan.run("vars", "generate", "--prompt-values", str(answers)).returncode == 0
    return vclan


# -- item 1: generator outputs are never followed ---------------------------------------------------------
@pytest.mark.parametrize("sandbox", [True, False])
def test_item1_generator_output_symlink_refused(vclan: VarsClan, tmp_path: Path, sandbox: bool) -> None:
    key = vclan.admin_key
    vclan.configure(machine_settings={"a": {"evil": f'ln -s {key} "$out/f"', "prompt": False}})
    before = snapshot(vclan.dir)
    args = ["vars", "generate", "a", "-g", "evil"] + ([] if sandbox else ["--no-sandbox"])
    err = fails(vclan.run(*args), "generator 'evil' of machine 'a'", "$out/f is a symlink", "never followed")
    assert "AGE-SECRET-KEY" not in err
    after = snapshot(vclan.dir)
    assert not any("evil" in p for p in after)
    assert not any(isinstance(v, bytes) and b"AGE-SECRET-KEY" in v for v in after.values())
    assert {p: v for p, v in after.items() if p in before} == before


@pytest.mark.parametrize("script, what", [
    ('mkfifo "$out/f"', "is not a regular file"),
    ('mkdir "$out/f"', "is not a regular file"),
    ('head -c 2000000 /dev/zero > "$out/f"', "larger than the limit"),
])
def test_item1_fifo_folder_and_huge_outputs_refused(script: str, what: str) -> None:
    gen = Generator("evil", files={"f": VarFile()}, script=script)
    with pytest.raises(ClanError) as err:
        run.execute(GenKey("evil", "m"), gen, {}, {}, sandbox=True)
    assert what in str(err.value) and "generator 'evil' of machine 'm'" in str(err.value)


def test_item1_output_cap_for_python_run_and_replaced_out_folder(tmp_path: Path) -> None:
    big = Generator("big", files={"f": VarFile()}, run=lambda inp: {"f": b"x" * (run.OUTPUT_LIMIT + 1)})
    with pytest.raises(ClanError, match=r"more than .* bytes for file 'f'"):
        run.execute(GenKey("big", "m"), big, {}, {})
    # without the sandbox a script can swap $out itself for a symlink: it is not followed either
    (tmp_path / "key").write_text("AGE-SECRET-KEY-1 of someone\n")
    linked = Generator("hard", files={"f": VarFile()}, script=f'ln {tmp_path / "key"} "$out/f"')
    with pytest.raises(ClanError, match="is a hard link"):
        run.execute(GenKey("hard", "m"), linked, {}, {}, sandbox=False)
    swapped = Generator("swap", files={"f": VarFile()}, script=f'rm -rf "$out"; ln -s {tmp_path} "$out"')
    (tmp_path / "f").write_text("outside\n")
    with pytest.raises(ClanError, match="is no longer a folder"):
        run.execute(GenKey("swap", "m"), swapped, {}, {}, sandbox=False)


# -- item 2: no path outside the clan through a planted symlink --------------------------------------------
def test_item2_new_vars_never_written_through_a_symlinked_folder(vclan: VarsClan, tmp_path: Path,
                                                                answers: Path) -> None:
    target = outside(tmp_path)
    (vclan.dir / "vars/per-machine").mkdir(parents=True)
    (vclan.dir / "vars/per-machine/a").symlink_to(target)
    fails(vclan.run("vars", "generate", "--prompt-values", str(answers)),
          "vars/per-machine/a", "is a symlink", "never follows symlinks")
    assert sorted(p.name for p in target.iterdir()) == ["precious"]
    # the same through keys/
    (vclan.dir / "vars/per-machine/a").unlink()
    (vclan.dir / "keys/machines").symlink_to(target)
    fails(vclan.run("vars", "generate", "--prompt-values", str(answers)), "keys/machines", "is a symlink")
    assert sorted(p.name for p in target.iterdir()) == ["precious"]


def test_item2_leftover_recovery_never_follows_a_symlink(generated: VarsClan, tmp_path: Path) -> None:
    target = outside(tmp_path)
    planted = generated.dir / "vars/per-machine/a/.wg.tmp-0123456789ab"  # looks like a leftover swap
    planted.symlink_to(target)
    old = generated.dir / "vars/per-machine/a/.token.old-0123456789ab"
    old.symlink_to(target)
    assert generated.run("vars", "list", "a").returncode == 0
    assert (target / "precious").read_text() == "do not touch\n"
    assert not os.path.lexists(planted) and not os.path.lexists(old)  # the links went, not their targets
    # a symlinked machine folder: `vars list` refuses instead of reading through it
    shutil.rmtree(generated.dir / "vars/per-machine/a")
    (generated.dir / "vars/per-machine/a").symlink_to(target)
    fails(generated.run("vars", "list", "a"), "vars/per-machine/a", "is a symlink")
    assert sorted(p.name for p in target.iterdir()) == ["precious"]


def test_item2_machines_delete_refuses_symlinks_and_is_all_or_nothing(generated: VarsClan, tmp_path: Path) -> None:
    target = outside(tmp_path)
    generated.configure(peers=("a", "b"), solo=(), extra_machines=("c",))  # c is in no role: deletable
    (generated.dir / "machines").mkdir()
    (generated.dir / "machines/c").symlink_to(target)
    before = snapshot(generated.dir)
    with pytest.raises(ClanError) as err:
        clan_api.delete_machine("c", flake=str(generated.dir))
    assert "machines/c" in str(err.value) and "is a symlink" in str(err.value)
    assert snapshot(generated.dir) == before  # clan.toml, vars and key of c all still there
    assert (target / "precious").read_text() == "do not touch\n"
    # a symlinked vars/per-machine/c is refused just the same, before anything changes
    (generated.dir / "machines/c").unlink()
    real = generated.dir / "vars/per-machine/c"
    real.rename(tmp_path / "c-vars")
    real.symlink_to(tmp_path / "c-vars")
    before = snapshot(generated.dir)
    with pytest.raises(ClanError, match="is a symlink"):
        clan_api.delete_machine("c", flake=str(generated.dir))
    assert snapshot(generated.dir) == before and (tmp_path / "c-vars/solo-key").is_dir()
    # with real folders the delete goes through, completely
    real.unlink()
    (tmp_path / "c-vars").rename(real)
    result = clan_api.delete_machine("c", flake=str(generated.dir))
    assert result.removed == ["clan.toml: machines.c", "vars/per-machine/c", "keys/machines/c.pub"]
    assert not real.exists() and not (generated.dir / "keys/machines/c.pub").exists()


def test_item2_value_symlinked_to_the_admin_key_is_never_deployed(generated: VarsClan) -> None:
    value = generated.dir / "vars/per-machine/a/wg/pub/value"
    value.unlink()
    value.symlink_to(generated.admin_key)  # the peers file of every machine would carry the key
    with pytest.raises(ClanError) as err:
        generated.open().evaluator.configs()
    assert "vars/per-machine/a/wg/pub/value" in str(err.value) and "is a symlink" in str(err.value)
    assert "AGE-SECRET-KEY" not in str(err.value)
    fails(generated.run("machines", "build", "b"), "is a symlink")
    # a secret swapped for a symlink is refused by deploy's digests and values alike
    value.unlink()
    secret = generated.dir / "vars/per-machine/a/token/token/secret.age"
    secret.rename(generated.dir.parent / "token.age")
    secret.symlink_to(generated.dir.parent / "token.age")
    with pytest.raises(ClanError, match="is a symlink"):
        machine_secrets(generated.open(), "a")


def test_item2_admin_pub_symlinked_to_a_private_key_does_not_leak(generated: VarsClan) -> None:
    (generated.dir / "keys/admins/evil.pub").symlink_to(generated.admin_key)
    for args in (("vars", "check"), ("vars", "generate")):
        err = fails(generated.run(*args), "keys/admins/evil.pub", "is a symlink")
        assert "AGE-SECRET-KEY" not in err


# -- item 4: no silent re-keying -------------------------------------------------------------------------
def test_item4_replaced_machine_public_key_is_refused(generated: VarsClan) -> None:
    pub = generated.dir / "keys/machines/a.pub"
    attacker = x25519.Identity.generate()
    pub.write_text(f"{attacker.to_public()}\n")
    before = snapshot(generated.dir)
    for yes in ([], ["--yes"]):  # --yes accepts new recipients, never a key that contradicts vars
        fails(generated.run("vars", "generate", "a", "-g", "token", *yes),
              "keys/machines/a.pub", "it was replaced", "git checkout -- keys/machines/a.pub")
        assert snapshot(generated.dir) == before
    r = generated.run("vars", "check", "a")
    assert r.returncode == 1 and b"recipients: machine-key/a" in r.stdout and b"was replaced" in r.stdout
    # machines update generates missing vars first: refused the same way, before any host
    (generated.dir / "vars/per-machine/a/token").rename(generated.dir.parent / "token-aside")
    before = snapshot(generated.dir)
    fails(generated.run("machines", "update", "a", "--no-check"), "it was replaced")
    assert snapshot(generated.dir) == before


def test_item4_recipient_changes_show_a_diff_and_need_yes(generated: VarsClan) -> None:
    evil = x25519.Identity.generate()
    (generated.dir / "keys/admins/evil.pub").write_text(f"{evil.to_public()}\n")
    before = snapshot(generated.dir)
    err = fails(generated.run("vars", "generate"), "would change", "+ admin 'evil'", "--yes")
    assert "the age key of machine 'a'" in err and "a/wg/priv" in err
    assert snapshot(generated.dir) == before
    fails(generated.run("machines", "update", "a", "--no-check"), "+ admin 'evil'", "--yes")
    assert snapshot(generated.dir) == before
    # accepted: re-encrypted to the new admin
    r = generated.run("vars", "generate", "--yes")
    assert r.returncode == 0 and b"re-encrypted a/wg/priv" in r.stdout
    # removing an admin is a change too
    (generated.dir / "keys/admins/evil.pub").unlink()
    fails(generated.run("vars", "generate"), "- an unknown key")
    assert generated.run("vars", "generate", "-y").returncode == 0
    assert generated.run("vars", "check").returncode == 0


# -- item 5: dependents are invalidated --------------------------------------------------------------------
def test_item5_set_or_regenerated_dependency_makes_dependents_outdated(generated: VarsClan) -> None:
    cert = decrypt_secret(generated.open(), "a", "cert", "key")
    assert generated.run("vars", "set", "a", "wg/priv", input=b"new wg key").returncode == 0
    r = generated.run("vars", "check")
    assert r.returncode == 1 and b"outdated: a/cert" in r.stdout and b"b/cert" not in r.stdout
    r = generated.run("vars", "generate")
    assert r.returncode == 0 and r.stdout.decode().splitlines() == ["generated a/cert"]
    assert decrypt_secret(generated.open(), "a", "cert", "key") != cert
    # what is left is wg's own other file, made from the old key (set by hand: `vars set` it too)
    issues = json.loads(generated.run("vars", "check", "--json").stdout)["issues"]
    assert [(i["kind"], i["var"]) for i in issues] == [("outdated", "a/wg/pub")]


# -- item 6: one writer at a time ---------------------------------------------------------------------------
def _spawn(vclan: VarsClan, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*pyclan_command(), "-C", str(vclan.dir), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "500"})


def _cert_consistent(vclan: VarsClan, machine: str) -> bool:
    """The cert generator's key is sha256(ca key + wg key): proof it ran on the stored inputs."""
    import hashlib

    clan = vclan.open()
    ca, wg = decrypt_secret(clan, machine, "ca", "key"), decrypt_secret(clan, machine, "wg", "priv")
    return decrypt_secret(clan, machine, "cert", "key").strip() == hashlib.sha256(ca + wg).hexdigest().encode()


def test_item6_two_concurrent_vars_generate_end_consistent(generated: VarsClan, answers: Path) -> None:
    procs = [_spawn(generated, "vars", "generate", "--regenerate", "--prompt-values", str(answers))
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else b"") for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    assert generated.run("vars", "check").returncode == 0
    assert _cert_consistent(generated, "a") and _cert_consistent(generated, "b")


def test_item6_second_writer_waits_or_fails_fast(generated: VarsClan) -> None:
    with clan_lock(generated.dir, "a test holding the lock"):
        fails(generated.cli("vars", "generate", "--no-wait"), "`a test holding the lock`", "not waiting")
        fails(generated.cli("machines", "create", "x", "--no-wait"), "not waiting")
        waiting = _spawn(generated, "vars", "set", "a", "wg/pub")
        assert waiting.stdin is None and waiting.stderr is not None
        line = waiting.stderr.readline()
        assert b"waiting for `a test holding the lock`" in line and waiting.poll() is None
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert not (generated.dir / ".pyclan/lock").read_text()  # released, holder cleared


def test_item6_concurrent_machines_create_lose_nothing(vclan: VarsClan) -> None:
    names = [f"n{i}" for i in range(6)]
    procs = [_spawn(vclan, "machines", "create", n) for n in names]
    assert [p.wait(timeout=120) for p in procs] == [0] * len(names)
    machines = clan_api.list_machines(flake=str(vclan.dir))
    assert set(names) <= {m.name for m in machines}


def test_item6_lock_is_reentrant_and_never_through_a_symlink(vclan: VarsClan, tmp_path: Path) -> None:
    with clan_lock(vclan.dir, "outer"), clan_lock(vclan.dir, "inner"):  # nested calls share the lock
        assert "`outer`" in (vclan.dir / ".pyclan/lock").read_text()
    target = outside(tmp_path)
    shutil.rmtree(vclan.dir / ".pyclan")
    (vclan.dir / ".pyclan").symlink_to(target)
    fails(vclan.run("vars", "generate"), ".pyclan", "is a symlink")
    assert sorted(p.name for p in target.iterdir()) == ["precious"]


# -- item 8: the sandbox is unprivileged --------------------------------------------------------------------
def test_item8_sandbox_runs_as_nobody_with_a_minimal_etc() -> None:
    script = 'printf "%s %s\\n" "$(id -u)" "$(id -g)" > "$out/id"; ls -A /etc > "$out/etc"'
    gen = Generator("who", files={"id": VarFile(), "etc": VarFile()}, script=script)
    out = run.execute(GenKey("who", "m"), gen, {}, {}, sandbox=True)
    assert out["id"] == b"65534 65534\n"
    etc = set(out["etc"].decode().split())
    assert etc and not etc & {"shadow", "gshadow", "ssh", "sudoers", "machine-id", "ssl/private"}
    assert {"passwd", "group"} <= etc


def test_item8_a_script_that_runs_too_long_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    gen = Generator("slow", files={"f": VarFile()}, script=f'echo $$ > {pidfile}; sleep 60; echo > "$out/f"',
                    timeout=1)
    with pytest.raises(ClanError, match="was killed after its timeout of 1 s"):
        run.execute(GenKey("slow", "m"), gen, {}, {}, sandbox=False)
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# -- item 9: no secret in clear after a kill ----------------------------------------------------------------
def test_item9_sigkill_leaves_no_secret_in_clear(generated: VarsClan, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    marker = tmp_path / "started"
    wg = decrypt_secret(generated.open(), "a", "wg", "priv")
    generated.configure(machine_settings={"a": {
        "evil": f'cp "$in/wg/priv" "$out/f"; echo $$ > {marker}.tmp; mv {marker}.tmp {marker}; sleep 60',
        "evil_deps": ["wg"],
    }})
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen([*pyclan_command(), "-C", str(generated.dir), "vars", "generate", "a", "-g", "evil",
                             "--no-sandbox"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        in_clear = [p for p in tmpdir.rglob("*") if p.is_file() and wg in p.read_bytes()]
        assert in_clear, "the attack is meaningful only if the secret is on disk while the script runs"
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in tmpdir.glob("pyclan-vars-*/*"))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    script_pid = int(marker.read_text())
    for _ in range(200):  # the script dies with pyclan (PR_SET_PDEATHSIG); give the kernel a moment
        try:
            os.kill(script_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the generator script outlived the killed pyclan")
    # the next run, whatever it does, removes what the killed one left
    r = subprocess.run([*pyclan_command(), "-C", str(generated.dir), "vars", "generate", "b"], env=env,
                       capture_output=True, check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not [p for p in tmpdir.rglob("*") if p.is_file() and wg in p.read_bytes()]
    assert [p.name for p in tmpdir.iterdir()] == [f"pyclan-vars-{os.getuid()}"]
    assert list((tmpdir / f"pyclan-vars-{os.getuid()}").iterdir()) == []


def test_item9_python_runs_write_temporary_files_in_the_run_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    seen: list[str] = []

    def sign(inp: object) -> dict[str, bytes]:
        with tempfile.TemporaryDirectory() as tmp:  # like the SSH CA signing step
            seen.append(tmp)
        return {"f": b"x"}

    run.execute(GenKey("ca-sign", "m"), Generator("ca-sign", files={"f": VarFile()}, run=sign), {}, {})
    base = tmp_path / f"pyclan-vars-{os.getuid()}"
    assert seen and Path(seen[0]).is_relative_to(base)
    assert stat.S_IMODE(base.stat().st_mode) == 0o700 and list(base.iterdir()) == []
    # leftovers of any name are removed by the next run; a planted symlink is not followed
    (base / "whatever-name").mkdir()
    (base / "whatever-name/secret").write_text("s")
    (base / "link").symlink_to(outside(tmp_path))
    run.execute(GenKey("ca-sign", "m"), Generator("ca-sign", files={"f": VarFile()}, run=sign), {}, {})
    assert list(base.iterdir()) == [] and (tmp_path / "outside/precious").exists()


# -- item 10: bad state in vars/ and keys/ is a clear error with a fix ------------------------------------
def test_item10_file_replaced_by_a_folder(generated: VarsClan) -> None:
    value = generated.dir / "vars/per-machine/a/wg/pub/value"
    value.unlink()
    value.mkdir()
    for args in (("vars", "check"), ("vars", "get", "a", "wg/pub"), ("vars", "generate")):
        fails(generated.run(*args), "vars/per-machine/a/wg/pub/value", "is a folder", "rm -r")


def test_item10_read_only_vars_and_keys(generated: VarsClan, answers: Path) -> None:
    bwrap = shutil.which("bwrap")
    assert bwrap
    generated.configure(extra_machines=("new",), peers=("a", "b", "new"))
    for folder in ("vars", "keys"):
        before = snapshot(generated.dir)
        cmd = [bwrap, "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
               "--ro-bind", str(generated.dir / folder), str(generated.dir / folder),
               *pyclan_command(), "-C", str(generated.dir), "vars", "generate", "--yes", "--no-sandbox",
               "--prompt-values", str(answers)]
        r = subprocess.run(cmd, capture_output=True, check=False, timeout=120, env={**os.environ, "COLUMNS": "500"})
        fails(r, "read-only file system", "make the clan folder writable")
        assert snapshot(generated.dir) == before


def test_item10_truncated_secret_is_reported_and_repaired(generated: VarsClan) -> None:
    secret = generated.dir / "vars/per-machine/a/wg/priv/secret.age"
    secret.write_bytes(secret.read_bytes()[:60])
    fails(generated.run("vars", "get", "a", "wg/priv"), "is damaged (truncated or corrupted)", "vars generate a")
    r = generated.run("vars", "check")
    assert r.returncode == 1 and b"undecryptable: a/wg/priv" in r.stdout
    r = generated.run("vars", "generate")
    assert r.returncode == 0 and "generated a/wg" in r.stdout.decode().splitlines()
    assert "generated a/cert" in r.stdout.decode()  # its dependent follows
    assert generated.run("vars", "check").returncode == 0
    assert get(generated.open(), "a", "wg/priv")[1]


def test_item10_missing_machine_private_key(generated: VarsClan) -> None:
    shutil.rmtree(generated.dir / "vars/per-machine/a" / MACHINE_KEY_DIR)
    before = snapshot(generated.dir)
    fails(generated.run("vars", "generate", "a", "-g", "token"), "private age key of machine 'a' is missing",
          "git checkout -- vars/per-machine/a/.machine-key")
    assert snapshot(generated.dir) == before
    r = generated.run("vars", "check", "a")
    assert r.returncode == 1 and b"machine-key/a" in r.stdout


# -- item 11: modes ----------------------------------------------------------------------------------------
def test_item11_readable_admin_key_is_refused(generated: VarsClan) -> None:
    generated.admin_key.chmod(0o644)
    fails(generated.run("vars", "get", "a", "wg/priv"), "UNPROTECTED PRIVATE KEY FILE", "permissions 0644",
          f"chmod 600 {generated.admin_key}")
    generated.admin_key.chmod(0o600)
    assert generated.run("vars", "get", "a", "wg/priv").returncode == 0


def test_item11_key_folders_are_private_whatever_the_umask(vclan: VarsClan, tmp_path: Path, answers: Path) -> None:
    home = tmp_path / "home2"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYCLAN_AGE_KEY_FILE": ""}
    cmd = [*pyclan_command(), "-C", str(vclan.dir), "vars", "keygen", "--user", "zed"]
    r = subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=60, preexec_fn=lambda: os.umask(0))
    assert r.returncode == 0, r.stderr
    for folder in (home / ".config", home / ".config/pyclan"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((home / ".config/pyclan/age.key").stat().st_mode) == 0o600
    assert vclan.run("vars", "generate", "--prompt-values", str(answers), "--yes").returncode == 0
    assert stat.S_IMODE((vclan.dir / "vars/per-machine/a" / MACHINE_KEY_DIR).stat().st_mode) == 0o700


def test_item11_machines_create_and_delete_keep_clan_toml_mode(vclan: VarsClan) -> None:
    toml = vclan.dir / "clan.toml"
    toml.chmod(0o640)
    clan_api.create_machine("x", flake=str(vclan.dir))
    assert stat.S_IMODE(toml.stat().st_mode) == 0o640
    clan_api.delete_machine("x", flake=str(vclan.dir))
    assert stat.S_IMODE(toml.stat().st_mode) == 0o640
    assert "machines.x" not in toml.read_text()


def test_item11_demo_script_protects_the_demo_key() -> None:
    demo = Path(__file__).resolve().parents[2] / "scripts" / "demo.sh"
    text = demo.read_text()
    assert 'chmod 600 "$PYCLAN_AGE_KEY_FILE"' in text
    assert text.index("chmod 600") < text.index("pyclan check")


def test_check_is_json_clean_after_attacks(generated: VarsClan) -> None:
    """Errors from the safe-path layer are ordinary problems in --json output too."""
    (generated.dir / "keys/admins/evil.pub").symlink_to(generated.admin_key)
    r = generated.run("vars", "check", "--json")
    assert r.returncode == 1
    problem = json.loads(r.stdout)["errors"][0]
    assert problem["kind"] == "vars-error" and problem["path"] == "keys/admins/evil.pub"
