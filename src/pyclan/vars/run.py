"""Running one generator: a Python `run` in-process, or a bash `script` in a sandbox (R12.6).

A script runs as `bash -c 'set -euo pipefail; <script>'` in a fresh folder with
`$in/<dep>/<file>` (every file of every dependency, decrypted), `$out` (where it writes its
files) and `$prompts/<p>` (prompt answers) exported. With bubblewrap (the default) it runs as
uid/gid 65534 in its own user, network, PID, IPC and mount namespaces: the system's /usr
read-only, a minimal /etc (no shadow, gshadow, SSH host keys or machine secrets), a private
/tmp, no network, and only `$out` and its working folder writable. Either way it is killed
after `Generator.timeout` seconds, each file it writes is capped at `OUTPUT_LIMIT` bytes, and
it dies with pyclan. Outputs are read back as regular files only, opened with O_NOFOLLOW
relative to `$out`: a symlink, FIFO or folder in their place is an error, never followed.

Every folder that holds secrets in clear (a script's $in/$out/$prompts, the temporary files of
a Python `run`, such as the SSH CA signing step) lives in one per-run folder, mode 0700,
`$TMPDIR/pyclan-vars-<uid>/<random>/`, locked (flock) while its run is alive. The next run
removes every unlocked entry there, whatever its name: a SIGKILL leaves no secret behind for
longer than the next `vars generate`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from pyclan.config.generators import Generator, GeneratorInput
from pyclan.errors import ClanError
from pyclan.vars.layout import GenKey, vars_error

OUTPUT_LIMIT = 1024 * 1024  # bytes per generated file (and per file a script writes)
_LEGACY = re.compile(r"^pyclan-vars-(\d+)-")  # per-generator folders of older pyclan versions
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
_SANDBOX_HINT = "install bubblewrap (`apt-get install bubblewrap`) or pass --no-sandbox"
_NOBODY = 65534
# the only parts of the host's /etc a script sees (read-only): what programs need to start
_ETC_KEEP = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf",
             "hosts", "ssl/openssl.cnf", "ssl/certs", "protocols", "services", "mime.types")
_PR_SET_PDEATHSIG = 1
_sandbox_ok: bool | None = None
_current_run: Path | None = None
try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


# -- the per-run folder ------------------------------------------------------------------------
def runs_base() -> Path:
    return Path(tempfile.gettempdir()) / f"pyclan-vars-{os.getuid()}"


def _safe_base() -> Path:
    """`$TMPDIR/pyclan-vars-<uid>`, ours and 0700 (a shared /tmp may hold a planted one)."""
    base = runs_base()
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise vars_error(str(base), f"cannot create the folder for generator runs: {exc.strerror}",
                         hint="set $TMPDIR to a writable folder") from None
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise vars_error(str(base), "is not a folder owned by you (planted by someone else?)",
                         hint=f"remove it (`rm -rf {base}`) or set $TMPDIR to a private folder")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(base, 0o700)
    return base


def cleanup_stale_tempdirs() -> None:
    """Remove what killed runs left behind: every entry of the runs folder no live run locks."""
    base = runs_base()
    with contextlib.suppress(OSError):
        st = os.lstat(base)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
            for name in os.listdir(base):
                _remove_if_stale(base / name)
    with contextlib.suppress(OSError):  # folders of older versions, named after their pid
        for entry in Path(tempfile.gettempdir()).iterdir():
            m = _LEGACY.match(entry.name)
            if m and entry.is_dir() and not entry.is_symlink() and not _alive(int(m[1])):
                shutil.rmtree(entry, ignore_errors=True)


def _remove_if_stale(path: Path) -> None:
    if _current_run is not None and path == _current_run:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # a file, a symlink, a FIFO: nothing a live run uses
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return  # a live run holds it
    try:
        shutil.rmtree(path, ignore_errors=True)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def run_folder() -> Iterator[Path]:
    """This run's private folder (0700, flocked while alive); stale ones are removed first."""
    global _current_run
    if _current_run is not None:  # nested (a generate inside a generate): share it
        yield _current_run
        return
    base = _safe_base()
    cleanup_stale_tempdirs()
    path = Path(tempfile.mkdtemp(dir=base))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _current_run = path
    try:
        yield path
    finally:
        _current_run = None
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


# -- running -------------------------------------------------------------------------------------
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
    with run_folder() as run:
        work = Path(tempfile.mkdtemp(dir=run, prefix="gen-"))
        try:
            if gen.run is not None:
                produced = _run_python(key, gen, GeneratorInput(key.machine, dependencies, prompts), work)
            elif gen.script:
                produced = _run_script(key, gen, dependencies, prompts, sandbox, work)
            else:
                produced = {}
        finally:
            shutil.rmtree(work, ignore_errors=True)
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
    for f in gen.files:
        if len(produced[f]) > OUTPUT_LIMIT:
            raise _too_big(key, gen, f)
    return {f: produced[f] for f in gen.files}


def _of(key: GenKey) -> str:
    return f" of machine '{key.machine}'" if key.machine else " (shared)"


def _too_big(key: GenKey, gen: Generator, file: str) -> ClanError:
    return vars_error(f"{key.label}/{file}", f"generator '{gen.name}'{_of(key)} produced more than "
                      f"{OUTPUT_LIMIT} bytes for file '{file}'", hint="vars are keys and small values, not data")


@contextlib.contextmanager
def _tempdir_in(folder: Path) -> Iterator[None]:
    """Make Python's tempfile use `folder` (inside the run folder) while a `run` executes."""
    old = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = old


def _run_python(key: GenKey, gen: Generator, inp: GeneratorInput, work: Path) -> dict[str, bytes]:
    assert gen.run is not None
    try:
        with _tempdir_in(work):
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


def _write_tree(base: Path, files: Mapping[str, bytes]) -> None:
    os.mkdir(base, 0o700)
    for name, data in files.items():
        fd = os.open(base / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)


def _child_setup() -> None:
    """In the forked child: die with pyclan, no core dumps, files capped at OUTPUT_LIMIT."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))


def _run_script(
    key: GenKey, gen: Generator, dependencies: Mapping[str, Mapping[str, bytes]],
    prompts: Mapping[str, str], sandbox: bool, tmp: Path,
) -> dict[str, bytes]:
    in_dir, out_dir, prompts_dir, work = tmp / "in", tmp / "out", tmp / "prompts", tmp / "work"
    os.mkdir(in_dir, 0o700)
    os.mkdir(out_dir, 0o700)
    os.mkdir(work, 0o700)
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
        cmd = [*sandbox_prefix(tmp, work, out_dir), *cmd]
    tmp_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        status, log = _spawn(cmd, env, work, tmp, gen.timeout)
        if status != 0:
            raise _script_failed(key, gen, status, log, sandbox)
        return _read_outputs(key, gen, tmp_fd)
    finally:
        os.close(tmp_fd)


def _spawn(cmd: list[str], env: dict[str, str], cwd: Path, tmp: Path, timeout: float) -> tuple[int | str, bytes]:
    """Run to completion; output goes to a capped log file; 'timeout' if it had to be killed."""
    log_path = tmp / "log"
    with open(log_path, "w+b") as log:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_child_setup,  # no threads spawn children here
        )
        try:
            status: int | str = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            status = "timeout"
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        log.seek(max(0, os.fstat(log.fileno()).st_size - 4096))
        return status, log.read()


def _script_failed(key: GenKey, gen: Generator, status: int | str, log: bytes, sandbox: bool) -> ClanError:
    tail = "\n".join(log.decode(errors="replace").strip().splitlines()[-15:])
    if status == "timeout":
        what = f"was killed after its timeout of {gen.timeout:g} s"
        hint = "make the script faster, or raise `timeout` in the generator's declaration"
    elif status in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):  # killed, or its shell reporting the kill
        what = f"wrote a file larger than the limit of {OUTPUT_LIMIT} bytes and was stopped"
        hint = "vars are keys and small values, not data"
    else:
        what = f"failed with exit code {status}"
        hint = ("fix the script; inside the sandbox it runs as user nobody, and only $out and its working "
                "folder are writable") if sandbox else "fix the script"
    return vars_error(key.label, f"the script of generator '{gen.name}'{_of(key)} {what}"
                      + (f":\n{tail}" if tail else ""), hint=hint)


def _read_outputs(key: GenKey, gen: Generator, tmp_fd: int) -> dict[str, bytes]:
    """The declared files of $out: regular files only, never through a symlink, each capped."""
    def bad(file: str, what: str) -> ClanError:
        return vars_error(f"{key.label}/{file}", f"generator '{gen.name}'{_of(key)}: $out/{file} {what}",
                          hint="a generator must write its outputs as regular files in $out "
                          "(no symlinks, folders or FIFOs)")

    try:
        out_fd = os.open("out", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=tmp_fd)
    except OSError:
        raise bad("", "is no longer a folder (the script replaced $out)") from None
    out: dict[str, bytes] = {}
    try:
        for name in sorted(gen.files):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=out_fd)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise bad(name, f"is a symlink (to {_link(out_fd, name)}); outputs are never followed") from None
                raise bad(name, f"cannot be read: {exc.strerror}") from None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                os.close(fd)
                raise bad(name, "is not a regular file" if not stat.S_ISREG(st.st_mode)
                          else "is a hard link to another file; outputs must be files of their own")
            with os.fdopen(fd, "rb") as fh:
                data = fh.read(OUTPUT_LIMIT + 1)
            if len(data) > OUTPUT_LIMIT:
                raise _too_big(key, gen, name)
            out[name] = data
    finally:
        os.close(out_fd)
    return out


def _link(dir_fd: int, name: str) -> str:
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return "?"


def _passwd_files(tmp: Path) -> tuple[Path, Path]:
    passwd, group = tmp / "etc-passwd", tmp / "etc-group"
    passwd.write_text(f"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:{_NOBODY}:{_NOBODY}:nobody:"
                      "/nonexistent:/usr/sbin/nologin\n")
    group.write_text(f"root:x:0:\nnogroup:x:{_NOBODY}:\n")
    return passwd, group


def sandbox_prefix(tmp: Path, work: Path, out: Path | None = None) -> list[str]:
    """The bwrap command line: user nobody, system read-only, minimal /etc, no network."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise vars_error("--sandbox", "bubblewrap (bwrap) is needed to run generator scripts in a sandbox "
                         "but is not installed", hint=_SANDBOX_HINT)
    args = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(_NOBODY), "--gid", str(_NOBODY),
            "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        p = Path(top)
        if p.is_symlink():
            args += ["--symlink", os.readlink(p), top]
        elif p.is_dir():
            args += ["--ro-bind", top, top]
    passwd, group = _passwd_files(tmp)
    args += ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]
    for name in _ETC_KEEP:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]
    args += ["--ro-bind", str(tmp), str(tmp)]
    for writable in (out, work):
        if writable is not None:
            args += ["--bind", str(writable), str(writable)]
    args += ["--chdir", str(work)]
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
