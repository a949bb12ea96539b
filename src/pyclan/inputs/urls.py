"""Parsing an input's `url` into what git needs: where to fetch from, and which ref or commit.

Supported forms (Nix's spelling, so flake users recognise them):
`git+https://…`, `git+http://…`, `git+ssh://…`, `git+git://…`, `git+file:///abs/path`, and
`github:OWNER/REPO[/REF]` (shorthand for `git+https://github.com/OWNER/REPO?ref=REF`), each
with optional `?ref=<branch|tag>`, `?rev=<commit>` and `?dir=<sub-folder>` (the folder that
holds `services/`, for repositories that keep several things).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pyclan.errors import ClanError

GIT_SCHEMES = ("git+https", "git+http", "git+ssh", "git+git", "git+file")
QUERY_KEYS = ("ref", "rev", "dir")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_REF_RE = re.compile(r"^[A-Za-z0-9._/+-]+$")


@dataclass(frozen=True)
class GitSource:
    """A parsed git input URL."""

    url: str  # as written in the inventory (the lock's key for "has the declaration changed")
    fetch_url: str  # what `git fetch` gets, without `git+` and without the query
    ref: str | None  # branch or tag; None → the remote's HEAD
    rev: str | None  # a pinned commit
    dir: str  # sub-folder holding `services/` ("" = the repository root)

    @property
    def wanted(self) -> str:
        """What `inputs update` follows: the pinned commit, else the ref, else HEAD."""
        return self.rev or self.ref or "HEAD"


def _bad(path: str, message: str, hint: str) -> ClanError:
    return ClanError.single("input-error", path, message, hint=hint)


def parse_git_url(url: str, path: str) -> GitSource:
    """Parse `url` (declared at inventory `path`) or raise a ClanError saying what is accepted."""
    accepted = (
        "use git+https://HOST/REPO, git+ssh://[USER@]HOST/REPO, git+git://HOST/REPO, "
        "git+file:///ABSOLUTE/PATH or github:OWNER/REPO, optionally with ?ref=BRANCH-OR-TAG or "
        "?rev=COMMIT; for a plain local folder write `path = \"…\"` instead of `url`"
    )
    if url.startswith("github:"):
        return _parse_github(url, path, accepted)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in GIT_SCHEMES:
        what = f"scheme '{parts.scheme}:'" if parts.scheme else "no scheme"
        raise _bad(path, f"unsupported input URL '{url}' ({what})", accepted)
    inner = scheme.removeprefix("git+")
    if inner == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise _bad(path, f"a git+file URL needs an absolute path: '{url}'", "write git+file:///ABSOLUTE/PATH")
    elif not parts.netloc:
        raise _bad(path, f"input URL '{url}' has no host", accepted)
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in QUERY_KEYS:
            raise _bad(
                path,
                f"unknown URL parameter '{key}' in '{url}'",
                f"supported parameters: {', '.join(QUERY_KEYS)}",
            )
        if key in query:
            raise _bad(path, f"URL parameter '{key}' given twice in '{url}'", "give each parameter once")
        query[key] = value
    fetch_url = urlunsplit((inner, parts.netloc, parts.path, "", ""))
    return _checked(url, fetch_url, query, path)


def _parse_github(url: str, path: str, accepted: str) -> GitSource:
    rest, _, query_text = url.removeprefix("github:").partition("?")
    pieces = [p for p in rest.split("/") if p]
    if len(pieces) < 2:
        raise _bad(path, f"'{url}' needs OWNER/REPO", accepted)
    query = dict(parse_qsl(query_text, keep_blank_values=True))
    unknown = sorted(set(query) - set(QUERY_KEYS))
    if unknown:
        raise _bad(path, f"unknown URL parameter '{unknown[0]}' in '{url}'", f"supported: {', '.join(QUERY_KEYS)}")
    if len(pieces) > 2:
        if "ref" in query or "rev" in query:
            raise _bad(path, f"'{url}' names a ref twice", "give the ref either after OWNER/REPO/ or as ?ref=")
        tail = "/".join(pieces[2:])
        query["rev" if _COMMIT_RE.match(tail) else "ref"] = tail
    fetch_url = f"https://github.com/{pieces[0]}/{pieces[1]}"
    return _checked(url, fetch_url, query, path)


def _checked(url: str, fetch_url: str, query: dict[str, str], path: str) -> GitSource:
    ref = query.get("ref")
    rev = query.get("rev")
    sub = query.get("dir", "").strip("/")
    if ref is not None and (not _REF_RE.match(ref) or ".." in ref or ref.startswith("-")):
        raise _bad(path, f"invalid ref '{ref}' in '{url}'", "a ref is a branch or tag name such as main or v1.2")
    if rev is not None and not _COMMIT_RE.match(rev):
        raise _bad(
            path,
            f"rev '{rev}' in '{url}' is not a full commit id",
            "?rev= takes the full 40-character commit id; use ?ref= for branches and tags",
        )
    if sub and any(part in ("", ".", "..") for part in sub.split("/")):
        raise _bad(path, f"invalid dir '{sub}' in '{url}'", "dir is a relative folder inside the repository")
    return GitSource(url=url, fetch_url=fetch_url, ref=ref, rev=rev, dir=sub)
