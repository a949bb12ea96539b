"""SSH destinations (`[user@]host[:port]`) that are safe to put on an ssh command line.

A user or host that starts with `-` is read by OpenSSH as an option (`-oProxyCommand=…` runs a
local command before any connection is made), and whitespace or control characters have no
place in either. Such strings are refused wherever a destination enters pyclan: the inventory
(`deploy.targetHost`, at load time), `--target-host`, the `internet` service's settings and the
local hosts' state. Every ssh command line pyclan builds also ends its options with `--`.
"""

from __future__ import annotations

SYNTAX_HINT = (
    "write it as [user@]host[:port], e.g. root@192.0.2.1 or admin@server1.lan:2222; "
    "a user or host never starts with '-' and has no spaces or control characters"
)


def _bad_character(text: str) -> str | None:
    for index, char in enumerate(text):
        if char.isspace() or not char.isprintable():
            return f"a {'whitespace' if char.isspace() else 'control'} character ({char!r}) at position {index + 1}"
    return None


def word_problem(word: str, what: str) -> str | None:
    """Why `word` (a user or host name on its own) is unsafe for ssh, or None."""
    bad = _bad_character(word)
    if bad is not None:
        return f"the {what} {word!r} contains {bad}"
    if word.startswith("-"):
        return f"the {what} {word!r} starts with '-', so ssh would read it as an option"
    return None


def destination_problem(spec: str) -> str | None:
    """Why `spec` (`[user@]host[:port][?options]`) is unsafe for ssh, or None.

    Only safety is checked here; the full syntax is checked when the destination is used.
    """
    bad = _bad_character(spec)
    if bad is not None:
        return f"{spec!r} contains {bad}"
    address = spec.split("?", 1)[0]
    *users, host = address.split("@")
    for user in users:
        if user.startswith("-"):
            return f"the user {user!r} of {spec!r} starts with '-', so ssh would read it as an option"
    if host.startswith("[-") or host.startswith("-"):
        return f"the host of {spec!r} starts with '-', so ssh would read it as an option"
    return None


def jump_hosts_problem(spec: str) -> str | None:
    """Why a comma-separated list of jump hosts (ssh -J) is unsafe, or None."""
    for entry in spec.split(","):
        if not entry:
            return f"{spec!r} has an empty jump host"
        problem = destination_problem(entry)
        if problem is not None:
            return problem
    return None
