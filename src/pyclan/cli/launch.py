"""The `pyclan` console script: `pyclan --help` from a cache, everything else through `cli.main`.

Importing typer (and the click inside it) costs more CPU than everything else `pyclan --help`
does. The root help depends only on pyclan's CLI source, typer's version and the terminal
width, so the text typer rendered is kept beside the bytecode caches (`__pycache__`), under a
key made of exactly those, and printed from there the next time. This module imports nothing
beyond what Python itself has loaded at start-up.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# What the root help is rendered from: the root command and its table of sub-commands, the
# shared options' help texts, and the package version.
_PREFIX = "root-help."
_SOURCES = ("main.py", "common.py", os.path.join(os.pardir, "__init__.py"))


def run() -> None:
    """Console-script entry."""
    if sys.argv[1:] == ["--help"]:
        path = help_cache_path()
        if path is not None:
            try:
                with open(path, encoding="utf-8") as cached:
                    text = cached.read()
            except OSError:
                pass
            else:
                sys.stdout.write(text)
                sys.stdout.flush()
                return
    from pyclan.cli.main import run as main_run

    main_run()


def remember_help(text: str) -> None:
    """Keep the root help typer rendered (as `click.echo` prints it) for the next `pyclan --help`."""
    if sys.dont_write_bytecode:
        return
    path = help_cache_path()
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.tmp"
        with open(partial, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        os.replace(partial, path)
        source_key = os.path.basename(path).rsplit(".w", 1)[0]
        for name in os.listdir(os.path.dirname(path)):  # texts of older sources
            if name.startswith(_PREFIX) and not name.startswith(source_key):
                os.unlink(os.path.join(os.path.dirname(path), name))
    except OSError:  # a read-only installation: no cache, typer renders it each time
        pass


def help_cache_path() -> str | None:
    """Where the root help for this source, typer and terminal width is kept (None: no cache)."""
    if sys.pycache_prefix is not None or any(k.startswith(("TYPER_", "_TYPER", "_PYCLAN")) for k in os.environ):
        return None  # typer's own settings (rich, completion) could change the text
    key = []
    for name in _SOURCES:
        try:
            st = os.stat(os.path.join(_HERE, name))
        except OSError:
            return None
        key.append(f"{st.st_mtime_ns:x}.{st.st_size:x}")
    typer_init = _typer_init()
    if typer_init is None:
        return None
    st = os.stat(typer_init)
    key.append(f"{st.st_mtime_ns:x}.{st.st_size:x}")
    return os.path.join(_HERE, "__pycache__", f"{_PREFIX}{'-'.join(key)}.w{_help_width()}.txt")


def _typer_init() -> str | None:
    """typer's `__init__.py`, found without importing typer."""
    for entry in sys.path:
        candidate = os.path.join(entry or os.curdir, "typer", "__init__.py")
        if os.path.isfile(candidate):
            return candidate
    return None


def _help_width() -> int:
    """The width click formats help for: the terminal's columns (as `shutil.get_terminal_size`
    finds them, $COLUMNS first), at most 80, less 2, at least 50."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return max(min(columns, 80) - 2, 50)
