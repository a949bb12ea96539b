"""Reading (and, for test fixtures, writing) sops-encrypted files with age keys, without the sops binary.

No maintained Python library reads sops files (PyPI's `sops` is the 2018 Python 2 era tool without
age; the others wrap the Go binary), so this implements sops' documented format:

- one random 32-byte data key per file, age-encrypted (ASCII-armored) once per recipient in
  `sops.age[].enc`;
- every leaf value of the document, in document order, is AES-256-GCM encrypted with that key
  and a fresh 32-byte IV, with the path of keys leading to it joined as `a:b:c:` as additional
  data, and stored as `ENC[AES256_GCM,data:…,iv:…,tag:…,type:str|int|float|bool|bytes|…]`;
  keys ending in `sops.unencrypted_suffix` (default `_unencrypted`) stay in clear;
- `sops.mac` is the uppercase hex SHA-512 over the clear values (in document order), encrypted
  like a value with `sops.lastmodified` (RFC 3339) as additional data. A file whose MAC does not
  match was changed by someone without the key, and is refused.

Clan's sops backend stores each var as a sops "binary" document: `{"data": ENC[…], "sops": {…}}`.
Only age recipients are supported (Clan's default); PGP/KMS-only files are refused clearly.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyrage import x25519

from pyclan.errors import ClanError
from pyclan.vars import age

KEY_ENV = "SOPS_AGE_KEY"
KEY_FILE_ENV = "SOPS_AGE_KEY_FILE"
_ENC = re.compile(r"^ENC\[AES256_GCM,data:(?P<data>[^,]*),iv:(?P<iv>[^,]+),tag:(?P<tag>[^,]+),type:(?P<type>[a-z]+)\]$")
_DEFAULT_SUFFIX = "_unencrypted"
_MAC_ONLY_ENCRYPTED_INIT = hashlib.sha256(b"sops").digest()  # sops' marker when mac_only_encrypted is set
_NONCE = 32


def sops_error(file: Path | str, message: str, hint: str | None = None) -> ClanError:
    """Every failure names the file (a tampered or foreign file must be found quickly)."""
    return ClanError.single("vars-error", str(file), message, hint=hint)


# -- the user's age keys, found the way sops finds them ------------------------------------------


def default_key_file() -> Path:
    """sops' default identity file: `$XDG_CONFIG_HOME/sops/age/keys.txt`, else `~/.config/sops/age/keys.txt`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sops" / "age" / "keys.txt"


@dataclass(frozen=True)
class KeySource:
    where: str  # "$SOPS_AGE_KEY", a file path
    identities: tuple[age.Identity, ...]


def key_sources() -> list[KeySource]:
    """Every age identity sops would use: `$SOPS_AGE_KEY`, `$SOPS_AGE_KEY_FILE` and the default file.

    sops combines all of them; so does this. (`SOPS_AGE_KEY_CMD`, SSH keys and plugin identities
    such as `AGE-PLUGIN-YUBIKEY-…` lines are not used; such lines are skipped.)
    """
    found: list[KeySource] = []
    text = os.environ.get(KEY_ENV)
    if text:
        lines = "\n".join(part for line in text.splitlines() for part in line.split(","))
        found.append(KeySource(f"${KEY_ENV}", _parse(lines, f"${KEY_ENV}")))
    named = os.environ.get(KEY_FILE_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise sops_error(path, f"${KEY_FILE_ENV} names a file that does not exist", hint=no_key_hint())
        found.append(KeySource(str(path), _parse(path.read_text(), str(path))))
    default = default_key_file()
    if default.is_file() and str(default) not in {s.where for s in found}:
        found.append(KeySource(str(default), _parse(default.read_text(), str(default))))
    return found


def _parse(text: str, where: str) -> tuple[age.Identity, ...]:
    """X25519 identities of an identity file; plugin identities (hardware keys) are left out."""
    kept = "\n".join("" if line.strip().startswith("AGE-PLUGIN-") else line for line in text.splitlines())
    return tuple(age.parse_identities(kept, where))


def no_key_hint() -> str:
    return (f"point ${KEY_FILE_ENV} at the age key you use with Clan (or put it in {default_key_file()}, "
            f"or the key itself in ${KEY_ENV})")


# -- documents -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SopsDocument:
    """A parsed (still encrypted) sops JSON file."""

    path: Path
    tree: dict[str, Any]  # the document without its `sops` metadata, in file order
    meta: dict[str, Any]

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(sorted(str(a.get("recipient", "")) for a in self.meta.get("age") or []))


def load(path: Path) -> SopsDocument:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise sops_error(path, f"cannot read the sops file: {exc.strerror}") from None
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise sops_error(path, f"not a sops JSON file ({exc})",
                         hint="Clan's sops backend writes JSON; YAML/dotenv sops files are not supported") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sops"), dict):
        raise sops_error(path, "not a sops file: it has no `sops` metadata object")
    meta = doc.pop("sops")
    for field in ("mac", "lastmodified"):
        if not isinstance(meta.get(field), str) or not meta[field]:
            raise sops_error(path, f"sops metadata lacks `{field}`: the file is damaged or not written by sops")
    if not meta.get("age"):
        kinds = [k for k in ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault") if meta.get(k)]
        only = f" (only {', '.join(kinds)})" if kinds else ""
        raise sops_error(path, f"the file is not encrypted to any age key{only}",
                         hint="re-encrypt it with sops to an age key first (`sops updatekeys`)")
    return SopsDocument(path, doc, meta)


def data_key(doc: SopsDocument, identities: Sequence[age.Identity]) -> bytes:
    """The file's AES key, from the first `sops.age[]` entry one of the identities opens."""
    ids = list(identities)
    for entry in doc.meta.get("age") or []:
        enc = entry.get("enc") if isinstance(entry, dict) else None
        if not isinstance(enc, str) or not ids:
            continue
        try:
            key = bytes(pyrage.decrypt(enc.encode(), ids))
        except pyrage.DecryptError:
            continue
        if len(key) != 32:
            raise sops_error(doc.path, f"the data key has {len(key)} bytes, expected 32: the file is damaged")
        return key
    listed = ", ".join(r[:16] + "…" for r in doc.recipients)
    raise sops_error(doc.path, f"none of your age keys is a recipient of this file (it is encrypted to {listed})",
                     hint=no_key_hint())


def _b64(text: str, what: str, path: Path) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise sops_error(path, f"{what} is not valid base64: the file is damaged") from None


def _open(value: str, key: bytes, aad: str, path: Path, where: str) -> tuple[bytes, str]:
    m = _ENC.match(value)
    if m is None:
        raise sops_error(path, f"{where}: not a sops-encrypted value (expected ENC[AES256_GCM,…])")
    nonce = _b64(m["iv"], f"{where}: the iv", path)
    data = _b64(m["data"], f"{where}: the data", path) + _b64(m["tag"], f"{where}: the tag", path)
    try:
        return AESGCM(key).decrypt(nonce, data, aad.encode()), m["type"]
    except InvalidTag:
        raise sops_error(path, f"{where}: the value does not decrypt (changed, moved or damaged)",
                         hint="restore the file from git history; it was not written by sops with this key") from None


def _seal(plain: bytes, kind: str, key: bytes, aad: str) -> str:
    nonce = secrets.token_bytes(_NONCE)
    out = AESGCM(key).encrypt(nonce, plain, aad.encode())
    data, iv, tag = (base64.b64encode(part).decode() for part in (out[:-16], nonce, out[-16:]))
    return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:{kind}]"


def _clear_bytes(value: Any) -> bytes:
    """How sops feeds a clear value into the MAC."""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)).encode()
    return str(value).encode()


def _typed(plain: bytes, kind: str) -> Any:
    text = plain.decode("utf-8", errors="surrogateescape")
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        return text.lower() in ("true", "1")
    return text


def _rfc3339(stamp: str, path: Path) -> str:
    """`lastmodified` as sops re-formats it for the MAC's additional data (Go's time.RFC3339)."""
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise sops_error(path, f"sops metadata `lastmodified` is not a time: {stamp!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    text = when.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@dataclass(frozen=True)
class Decrypted:
    tree: dict[str, Any]  # the clear document (typed values as sops emits them)
    raw: dict[tuple[str, ...], bytes]  # path → the exact decrypted bytes of each encrypted value


def decrypt(doc: SopsDocument, identities: Sequence[age.Identity]) -> Decrypted:
    """The clear document; raises (naming the file) when a value or the MAC does not verify."""
    key = data_key(doc, identities)
    suffix = doc.meta.get("unencrypted_suffix") or _DEFAULT_SUFFIX
    mac_only_encrypted = bool(doc.meta.get("mac_only_encrypted"))
    digest = hashlib.sha512(_MAC_ONLY_ENCRYPTED_INIT if mac_only_encrypted else b"")
    raw: dict[tuple[str, ...], bytes] = {}

    def walk(node: Any, path: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, (*path, str(k))) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path) for v in node]
        if node is None:
            return None
        encrypted = not any(part.endswith(suffix) for part in path)
        if not encrypted:
            if not mac_only_encrypted:
                digest.update(_clear_bytes(node))
            return node
        if not isinstance(node, str):
            raise sops_error(doc.path, f"{':'.join(path)}: expected an encrypted value, found {type(node).__name__}")
        if node == "":  # sops leaves empty values as they are
            raw[path] = b""
            return ""
        plain, kind = _open(node, key, "".join(f"{p}:" for p in path), doc.path, ":".join(path))
        digest.update(plain)
        raw[path] = plain
        return _typed(plain, kind)

    tree = walk(doc.tree, ())
    stored_mac, _ = _open(doc.meta["mac"], key, _rfc3339(doc.meta["lastmodified"], doc.path), doc.path, "sops.mac")
    if stored_mac.decode(errors="replace") != digest.hexdigest().upper():
        raise sops_error(doc.path, "MAC mismatch: the values were changed after sops encrypted them",
                         hint="restore the file from git history (or re-create it with sops)")
    return Decrypted(tree, raw)


def decrypt_binary(path: Path, identities: Sequence[age.Identity]) -> bytes:
    """The value of a sops binary document (Clan's var files): the exact bytes of its `data`."""
    clear = decrypt(load(path), identities)
    if set(clear.tree) != {"data"} or ("data",) not in clear.raw:
        raise sops_error(path, "expected a sops binary file (a single encrypted `data` value), as Clan writes vars")
    return clear.raw[("data",)]


def encrypt_binary(value: bytes, recipients: Sequence[str], lastmodified: dt.datetime | None = None) -> bytes:
    """A sops binary document holding `value` (used to build Clan-layout clans in tests and tools)."""
    key = secrets.token_bytes(32)
    when = (lastmodified or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    stamp = when.isoformat().replace("+00:00", "Z")
    entries = [
        {"recipient": r, "enc": bytes(pyrage.encrypt(key, [x25519.Recipient.from_str(r)], armored=True)).decode()}
        for r in recipients
    ]
    mac = hashlib.sha512(value).hexdigest().upper()
    doc = {
        "data": _seal(value, "str", key, "data:") if value else "",
        "sops": {
            "age": entries, "lastmodified": stamp, "mac": _seal(mac.encode(), "str", key, stamp),
            "unencrypted_suffix": _DEFAULT_SUFFIX, "version": "3.10.2",
        },
    }
    return (json.dumps(doc, indent="\t") + "\n").encode()
