"""Running one generator: a Python `run` in-process, or a bash `script` in a sandbox (R12.6).

A script runs as `bash -c 'set -euo pipefail; <script>'` in a fresh temporary folder with
`$in/<dep>/<file>` (every file of every dependency, decrypted), `$out` (where it writes its
files) and `$prompts/<p>` (prompt answers) exported. With bubblewrap it sees the system
read-only, a private /tmp, no network, and only its temporary folder writable. The folder is
named `pyclan-vars-<pid>-…` so that one left behind by a killed run (it may hold decrypted
inputs) is deleted by the next run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pyclan.errors import ClanError
from pyclan.vars.layout import GenKey, vars_error
from pyclan.vars.model import Generator, GeneratorInput

_TMP_PREFIX = "pyclan-vars-"
_STALE = re.compile(rf"^{_TMP_PREFIX}(\d+)-")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
_SANDBOX_HINT = "install bubblewrap (`apt-get install bubblewrap`) or pass --no-sandbox"
_sandbox_ok: bool | None = None


def execute(
    key: GenKey,
    gen: Generator,
    dependencies: Mapping[str, Mapping[str, bytes]],
    prompts: Mapping[str, str],
    sandbox: bool = True,
) -> dict[str, bytes]:
    """Run the generator and return every declared file's value (or raise naming what is wrong)."""
    if gen.run is not None and gen.script:
        raise vars_error(key.label, f"generator '{gen.name}' declares both `run` and `script`",
                         hint="keep one of them")
    if gen.run is not None:
        produced = _run_python(key, gen, GeneratorInput(key.machine, dependencies, prompts))
    elif gen.script:
        produced = _run_script(key, gen, dependencies, prompts, sandbox)
    else:
        produced = {}
    for p, prompt in gen.prompts.items():  # a persisted prompt stores its answer (R12.1)
        if prompt.persist and p not in produced:
            produced[p] = prompts[p].encode()
    missing = sorted(f for f in gen.files if f not in produced)
    if missing:
        how = "" if gen.run is not None or gen.script else " (it declares neither `run` nor `script`)"
        raise vars_error(
            f"{key.label}/{missing[0]}",
            f"generator '{gen.name}'{_of(key)} did not generate a file for "
            + ", ".join(repr(f) for f in missing) + how,
            hint="write every declared file to $out/<file> (script) or return it from `run`",
        )
    return {f: produced[f] for f in gen.files}


def _of(key: GenKey) -> str:
    return f" of machine '{key.machine}'" if key.machine else " (shared)"


def _run_python(key: GenKey, gen: Generator, inp: GeneratorInput) -> dict[str, bytes]:
    assert gen.run is not None
    try:
        result = gen.run(inp)
    except ClanError:
        raise
    except Exception as exc:  # generator code is user code
        raise vars_error(key.label, f"generator '{gen.name}'{_of(key)} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(result, Mapping):
        raise vars_error(key.label, f"generator '{gen.name}' returned {type(result).__name__}, "
                         "expected a mapping file name → bytes or str")
    out: dict[str, bytes] = {}
    for f, v in result.items():
        if isinstance(v, str):
            out[str(f)] = v.encode()
        elif isinstance(v, bytes | bytearray):
            out[str(f)] = bytes(v)
        else:
            raise vars_error(f"{key.label}/{f}", f"generator '{gen.name}' returned {type(v).__name__} "
                             f"for file '{f}', expected bytes or str")
    return out


def cleanup_stale_tempdirs() -> None:
    """Remove the temporary folders of generator runs whose process no longer exists."""
    base = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            m = _STALE.match(entry.name)
            if m and entry.is_dir() and not _alive(int(m[1])):
                shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_tree(base: Path, files: Mapping[str, bytes]) -> None:
    base.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (base / name).write_bytes(data)


def _run_script(
    key: GenKey, gen: Generator, dependencies: Mapping[str, Mapping[str, bytes]],
    prompts: Mapping[str, str], sandbox: bool,
) -> dict[str, bytes]:
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-")).resolve()
    try:
        in_dir, out_dir, prompts_dir, work = tmp / "in", tmp / "out", tmp / "prompts", tmp / "work"
        in_dir.mkdir()
        out_dir.mkdir()
        work.mkdir()
        for dep, files in dependencies.items():
            _write_tree(in_dir / dep, files)
        env = {
            "PATH": _DEFAULT_PATH, "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8",
            "in": str(in_dir), "out": str(out_dir),
        }
        if gen.prompts:
            _write_tree(prompts_dir, {p: v.encode() for p, v in prompts.items()})
            env["prompts"] = str(prompts_dir)
        cmd = ["bash", "-c", "set -euo pipefail\n" + (gen.script or "")]
        if sandbox:
            cmd = [*sandbox_prefix(tmp, work), *cmd]
        proc = subprocess.run(cmd, env=env, cwd=work, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-15:])
            raise vars_error(
                key.label,
                f"the script of generator '{gen.name}'{_of(key)} failed with exit code {proc.returncode}"
                + (f":\n{tail}" if tail else ""),
                hint="fix the script; inside the sandbox only $out and the temporary folder are writable"
                if sandbox else None,
            )
        return {p.name: p.read_bytes() for p in out_dir.iterdir() if p.is_file()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sandbox_prefix(tmp: Path, work: Path) -> list[str]:
    """The bwrap command line: system read-only, no network, only `tmp` writable."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise vars_error("--sandbox", "bubblewrap (bwrap) is needed to run generator scripts in a sandbox "
                         "but is not installed", hint=_SANDBOX_HINT)
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    args += ["--bind", str(tmp), str(tmp), "--chdir", str(work)]
    _probe(args)
    return args


def _probe(prefix: list[str]) -> None:
    """Fail early and clearly when bwrap exists but cannot create a sandbox here."""
    global _sandbox_ok
    if _sandbox_ok:
        return
    proc = subprocess.run([*prefix, "true"], capture_output=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise vars_error("--sandbox", "bubblewrap cannot create a sandbox on this system: "
                         + proc.stderr.decode(errors="replace").strip(),
                         hint="enable unprivileged user namespaces, or pass --no-sandbox")
    _sandbox_ok = True
