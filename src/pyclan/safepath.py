"""Paths inside the clan that pyclan reads, writes or deletes: never through a symlink.

A clan folder is shared through git, so anyone who can push to it can plant a symlink such as
`vars/per-machine/web/x/y/value -> ~/.config/pyclan/age.key` or `machines -> /home`. Every
access below `vars/`, `keys/`, `machines/` and `.pyclan/` goes through this module: each path
component between the clan root and the target must exist as a real directory (or not exist),
never as a symlink, and the final file is opened with O_NOFOLLOW. A refusal is a `ClanError`
naming the path and how to fix it; nothing is read, written or removed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from pathlib import Path

from pyclan.errors import ClanError

DEFAULT_READ_LIMIT = 16 * 1024 * 1024  # no var, key or recipients file is anywhere near this


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def refuse(root: Path, path: Path, message: str, hint: str | None = None, kind: str = "vars-error") -> ClanError:
    return ClanError.single(kind, _rel(root, path), message, hint=hint)


def _symlink_error(root: Path, link: Path, kind: str) -> ClanError:
    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    return refuse(
        root, link, f"is a symlink (to {target}); pyclan never follows symlinks inside the clan's "
        "vars/, keys/ and machines/ folders",
        hint=f"replace the symlink by a real file or folder (or remove it: `rm {_rel(root, link)}`)", kind=kind,
    )


def check(root: Path, path: Path, kind: str = "vars-error") -> Path:
    """`path`, after checking it lies below `root` and no existing component of it is a symlink."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise refuse(root, path, f"is outside the clan folder {root}", kind=kind) from None
    current = root
    for part in rel.parts:
        if part in ("..", "."):
            raise refuse(root, path, "contains '..' or '.'", kind=kind)
        current = current / part
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            return path
        if stat.S_ISLNK(st.st_mode):
            raise _symlink_error(root, current, kind)
    return path


def os_error(root: Path, path: Path, exc: OSError, doing: str, kind: str = "vars-error") -> ClanError:
    """An OSError while working in the clan, as a problem that says what would fix it."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "make the clan folder writable for you (`chmod u+w`, or mount it read-write) and run again"
        what = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return refuse(root, path, f"cannot {doing}: {what}", hint=hint, kind=kind)
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY):
        return refuse(
            root, path, f"cannot {doing}: a file is where a folder belongs (or a folder where a file belongs)",
            hint=f"inspect `{_rel(root, path)}` and remove what does not belong there (git can restore the rest)",
            kind=kind,
        )
    if exc.errno == errno.ENOSPC:
        return refuse(root, path, f"cannot {doing}: no space left on the device", hint="free some space", kind=kind)
    return refuse(root, path, f"cannot {doing}: {exc.strerror or exc}", kind=kind)


def read_bytes(root: Path, path: Path, limit: int = DEFAULT_READ_LIMIT, kind: str = "vars-error") -> bytes | None:
    """The content of a regular file below `root`, or None if it does not exist.

    Symlinks (anywhere on the way), folders, FIFOs and devices in its place are refused, as is
    a file larger than `limit`.
    """
    check(root, path, kind)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink_error(root, path, kind) from None
        raise os_error(root, path, exc, "read it", kind) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise refuse(root, path, "is a folder, but a file belongs here",
                         hint=f"remove the folder (`rm -r {_rel(root, path)}`) and generate the var again",
                         kind=kind)
        raise refuse(root, path, "is not a regular file", hint="remove it and generate the var again", kind=kind)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise refuse(root, path, f"is larger than {limit} bytes", hint="remove it and generate the var again",
                     kind=kind)
    return data


def read_text(root: Path, path: Path, kind: str = "vars-error") -> str | None:
    data = read_bytes(root, path, kind=kind)
    return None if data is None else data.decode(errors="replace")


def is_file(root: Path, path: Path, kind: str = "vars-error") -> bool:
    """True for a regular file; symlinks on the way are refused, anything else is False."""
    check(root, path, kind)
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def is_dir(root: Path, path: Path, kind: str = "vars-error") -> bool:
    check(root, path, kind)
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False


def make_dirs(root: Path, path: Path, mode: int = 0o755, kind: str = "vars-error") -> Path:
    """Create `path` and its missing parents below `root` with exactly `mode` (umask ignored)."""
    check(root, path, kind)
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        try:
            os.mkdir(current, mode)
            os.chmod(current, mode)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise refuse(root, current, "is a file, but a folder belongs here",
                             hint=f"remove it (`rm {_rel(root, current)}`) and run again", kind=kind) from None
        except OSError as exc:
            raise os_error(root, current, exc, "create the folder", kind) from None
    return path


def write_atomic(root: Path, path: Path, data: bytes, mode: int = 0o644, kind: str = "vars-error",
                 dir_mode: int = 0o755) -> None:
    """Write a file via a temporary sibling + rename, so readers never see half of it."""
    make_dirs(root, path.parent, dir_mode, kind)
    check(root, path, kind)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise os_error(root, path, exc, "write it", kind) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove_tree(root: Path, path: Path, kind: str = "vars-error") -> bool:
    """Remove a file or folder below `root` (never what a symlink points to); False if absent."""
    check(root, path, kind)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    try:
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path)  # fd-based: symlinks inside are removed, never followed
        else:
            os.unlink(path)
    except OSError as exc:
        raise os_error(root, path, exc, "remove it", kind) from None
    return True
