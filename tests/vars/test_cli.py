"""`pyclan vars …` as a user runs it: real subprocesses, real terminal for hidden prompts."""

from __future__ import annotations

import json
import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from pyclan.vars.api import decrypt_secret, decrypt_with_machine_key
from pyclan.vars.keys import KEY_FILE_ENV

from .conftest import ANSWERS, VarsClan, pyclan_command


def test_keygen(vclan: VarsClan, tmp_path: Path) -> None:
    key = tmp_path / "new" / "carol.key"
    env = {KEY_FILE_ENV: str(key)}
    r = vclan.cli("vars", "keygen", "--user", "carol", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["createdKey"] is True and data["registered"] == "keys/admins/carol.pub"
    assert (key.stat().st_mode & 0o777) == 0o600
    assert (vclan.dir / "keys/admins/carol.pub").read_text().strip() == data["publicKey"]
    # again: the key is reused, nothing changes
    r = vclan.cli("vars", "keygen", "--user", "carol", "--json", env=env)
    assert json.loads(r.stdout)["createdKey"] is False
    # another key under the same name is refused unless --force
    r = vclan.cli("vars", "keygen", "--user", "carol", env={KEY_FILE_ENV: str(tmp_path / "other.key")})
    assert r.returncode == 1 and b"already registered with another key" in r.stderr and b"--force" in r.stderr
    r = vclan.cli("vars", "keygen", "--user", "carol", "-f", env={KEY_FILE_ENV: str(tmp_path / "other.key")})
    assert r.returncode == 0
    # the default user name is $USER
    r = vclan.cli("vars", "keygen", "--json", env={"USER": "dave", KEY_FILE_ENV: str(tmp_path / "d.key")})
    assert json.loads(r.stdout)["registered"] == "keys/admins/dave.pub"


def test_generate_list_get_set_check(vclan: VarsClan, answers: Path) -> None:
    r = vclan.cli("vars", "check")
    assert r.returncode == 1 and b"missing: a/wg/priv" in r.stdout
    r = vclan.cli("vars", "list", "a")
    assert r.returncode == 0 and b"wg/priv: <not set>" in r.stdout
    r = vclan.cli("vars", "get", "a", "wg/pub")
    assert r.returncode == 1 and b"Var wg/pub has not been generated yet" in r.stderr
    assert b"pyclan vars generate a" in r.stderr

    r = vclan.cli("vars", "generate", "--prompt-values", str(answers), "--json")
    assert r.returncode == 0, r.stderr
    assert "shared/ca" in json.loads(r.stdout)["generated"]
    r = vclan.cli("va", "generate")  # alias; nothing left to do
    assert r.returncode == 0 and r.stdout == b"all vars are up to date\n"

    lines = vclan.run("vars", "list", "a").stdout.decode().splitlines()
    assert lines == sorted(lines)
    listed = dict(line.split(": ", 1) for line in lines)
    assert listed["wg/priv"] == "********" and listed["ca/key"] == "********"
    assert len(listed["wg/pub"]) == 64 and listed["ca/cert"].startswith("CERT-")
    data = json.loads(vclan.run("vars", "list", "a", "--json").stdout)
    assert {d["id"] for d in data} >= {"wg/priv", "pw/password", "cert/key"}
    assert all(d["value"] is None for d in data if d["secret"])

    # get: exact, unique prefix (accepted, with a note), ambiguous, unknown
    clan = vclan.open()
    r = vclan.run("vars", "get", "a", "wg/priv")
    assert r.stdout == decrypt_secret(clan, "a", "wg", "priv")
    r = vclan.run("vars", "get", "a", "wg/pr")
    assert r.returncode == 0 and r.stdout == decrypt_secret(clan, "a", "wg", "priv")
    assert b"'wg/pr' matched wg/priv" in r.stderr
    r = vclan.run("vars", "get", "a", "wg/p")
    assert r.returncode == 1 and b"Found multiple vars in a for wg/p: wg/priv, wg/pub" in r.stderr
    r = vclan.run("vars", "get", "a", "wgx/priv")
    assert r.returncode == 1 and b"Couldn't find var: wgx/priv for machine: a" in r.stderr
    assert b"did you mean 'wg/priv'" in r.stderr
    r = vclan.run("vars", "get", "a", "pw/password", "--json")
    password = ANSWERS["pw"]["password"]
    assert json.loads(r.stdout) == {"id": "pw/password", "secret": True, "value": password, "base64": None}
    # secrets need the admin key
    r = vclan.run("vars", "get", "a", "wg/priv", env={KEY_FILE_ENV: str(vclan.dir / "nope.key")})
    assert r.returncode == 1 and b"pyclan vars keygen" in r.stderr

    # set from stdin: a shared secret is encrypted for every machine that deploys it
    r = vclan.run("vars", "set", "a", "ca/key", input=b"new shared key\n")
    assert r.returncode == 0 and b"set a ca/key (encrypted)" in r.stdout
    shared = vclan.dir / "vars/shared/ca/key/secret.age"
    for m in ("a", "b"):
        assert decrypt_with_machine_key(vclan.open(), m, shared) == b"new shared key\n"
    r = vclan.run("vars", "set", "b", "wg/pub", input=b"public!")
    assert r.returncode == 0 and (vclan.dir / "vars/per-machine/b/wg/pub/value").read_bytes() == b"public!"
    r = vclan.run("vars", "set", "b", "wg/pu", input=b"x")
    assert r.returncode == 1 and b"Did you mean: wg/pub" in r.stderr
    # the other files of a generator whose file was set by hand are outdated until it runs again, and
    # so are the dependents of what was set (cert of a and b: ca, wg; issue 10 item 5)
    issues = json.loads(vclan.run("vars", "check", "--json").stdout)["issues"]
    outdated = {i["var"] for i in issues if i["kind"] == "outdated"}
    assert {"shared/ca/cert", "b/wg/priv", "a/cert", "b/cert"} <= outdated, issues
    assert vclan.run("vars", "generate", "-g", "ca", "-g", "wg").returncode == 0
    assert vclan.run("vars", "check").returncode == 0

    # check --json after a var is lost
    (vclan.dir / "vars/per-machine/b/token/token/secret.age").unlink()
    r = vclan.cli("vars", "check", "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["ok"] is False
    assert [(i["kind"], i["var"]) for i in report["issues"]] == [("missing", "b/token/token")]
    assert vclan.cli("vars", "check", "a", "c").returncode == 0
    r = vclan.cli("vars", "check", "zz")
    assert r.returncode == 1 and b"no machine named 'zz'" in r.stderr


def _read_until(fd: int, needle: bytes, timeout: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_hidden_prompt_is_asked_on_the_terminal_and_never_echoed(vclan: VarsClan) -> None:
    vclan.configure(peers=("a",), solo=())
    secret = "s3cret-typed-at-the-terminal"
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real CLI on a real terminal
        cmd = pyclan_command()
        os.execv(cmd[0] if os.path.isabs(cmd[0]) else sys.executable,
                 [*cmd, "-C", str(vclan.dir), "vars", "generate", "--no-check"])
    out = _read_until(fd, b"Password of the admin user")
    os.write(fd, secret.encode() + b"\n")
    out += _read_until(fd, b"generated a/pw")
    out += _read_until(fd, b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert secret.encode() not in out, "the hidden answer was echoed"
    assert decrypt_secret(vclan.open(), "a", "pw", "password") == secret.encode()


@pytest.mark.parametrize("answer, code", [(b"y", 0), (b"n", 1)])
def test_item4_recipient_change_is_confirmed_on_the_terminal(vclan: VarsClan, answers: Path, answer: bytes,
                                                             code: int) -> None:
    from pyrage import x25519

    assert vclan.run("vars", "generate", "--prompt-values", str(answers)).returncode == 0
    (vclan.dir / "keys/admins/bob.pub").write_text(f"{x25519.Identity.generate().to_public()}\n")
    before = {p: p.read_bytes() for p in (vclan.dir / "vars").rglob("*") if p.is_file()}
    pid, fd = pty.fork()
    if pid == 0:
        cmd = pyclan_command()
        os.execv(cmd[0] if os.path.isabs(cmd[0]) else sys.executable, [*cmd, "-C", str(vclan.dir), "vars", "generate"])
    out = _read_until(fd, b"[y/N]")
    assert b"+ admin 'bob'" in out
    os.write(fd, answer + b"\n")
    out += _read_until(fd, b"\x00", timeout=60)  # to the end
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == code, out
    after = {p: p.read_bytes() for p in (vclan.dir / "vars").rglob("*") if p.is_file()}
    assert (after == before) == (code == 1)
