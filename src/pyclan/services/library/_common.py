"""Helpers shared by the bundled services: rendering, key material, password hashes.

They keep service modules short and make sure all services produce key material and config
text the same way. Generator `run` callables here are frozen dataclasses, so two declarations
of the same generator compare equal by value (the evaluator rejects "declared differently").
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import shlex
import subprocess
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyclan.config.machine_config import STATE_DIR, MachineConfig
from pyclan.errors import ClanError
from pyclan.services import GeneratorInput

# Where pyclan's activation hooks keep small state files (stamps) on a host.
HOOK_STATE_DIR = "/var/lib/pyclan/hook-state"

# `[ -d /run/systemd/system ]` is systemd's own test for "booted with systemd" (sd_booted).
SYSTEMD_BOOTED = "[ -d /run/systemd/system ]"

_UUID_NAMESPACE = uuid.UUID("0b6b2a2e-4f0c-5b8e-9a53-70796c616e00")


def sh_quote(value: str) -> str:
    """Quote one word for POSIX sh (activation hooks run under /bin/sh)."""
    return shlex.quote(value)


def stable_uuid(*parts: str) -> str:
    """A UUID derived from names, so re-rendering a config never changes it."""
    return str(uuid.uuid5(_UUID_NAMESPACE, "\0".join(parts)))


UnitValue = str | int | bool | Sequence[str]


def _unit_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def systemd_unit(sections: Mapping[str, Mapping[str, UnitValue]]) -> str:
    """Render a systemd unit file: lists repeat the key, booleans become yes/no."""
    out: list[str] = []
    for section, entries in sections.items():
        if out:
            out.append("")
        out.append(f"[{section}]")
        for key, value in entries.items():
            if isinstance(value, str | int | bool):
                out.append(f"{key}={_unit_value(value)}")
            else:
                out.extend(f"{key}={item}" for item in value)
    return "\n".join(out) + "\n"


def single_line(value: str, what: str, path: str) -> str:
    """Refuse values that would break a line-based config file (a newline injects directives)."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ClanError.single(
            "settings-type", path, f"{what} must be a single line, got {value!r}",
            hint="remove the line break from the value",
        )
    return value


# -- passwords ------------------------------------------------------------------------------------

_CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHA512_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
    (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
)  # fmt: skip
_DEFAULT_ROUNDS = 5000


def _crypt_b64(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_CRYPT_ALPHABET[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat_to(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def sha512_crypt(password: str, salt: str | None = None, rounds: int = _DEFAULT_ROUNDS) -> str:
    """A crypt(3) SHA-512 hash (`$6$…`), as `mkpasswd -m sha-512` / `openssl passwd -6` make.

    Implemented from Drepper's public "Unix crypt using SHA-256 and SHA-512" specification,
    because Python's `crypt` module is deprecated (removed in 3.13) and the admin's machine
    may have neither `mkpasswd` nor `openssl`.
    """
    if salt is None:
        salt = "".join(secrets.choice(_CRYPT_ALPHABET) for _ in range(16))
    if not all(c in _CRYPT_ALPHABET for c in salt):
        raise ValueError(f"invalid crypt salt {salt!r}")
    salt_b = salt[:16].encode()
    rounds = min(max(rounds, 1000), 999_999_999)
    key = password.encode()
    klen = len(key)

    b = hashlib.sha512(key + salt_b + key).digest()
    a = hashlib.sha512(key + salt_b)
    for _ in range(klen // 64):
        a.update(b)
    a.update(b[: klen % 64])
    n = klen
    while n > 0:
        a.update(b if n & 1 else key)
        n >>= 1
    a_digest = a.digest()

    p = _repeat_to(hashlib.sha512(key * klen).digest(), klen) if klen else b""
    s = _repeat_to(hashlib.sha512(salt_b * (16 + a_digest[0])).digest(), len(salt_b))

    c = a_digest
    for i in range(rounds):
        h = hashlib.sha512(p if i & 1 else c)
        if i % 3:
            h.update(s)
        if i % 7:
            h.update(p)
        h.update(c if i & 1 else p)
        c = h.digest()

    encoded = "".join(_crypt_b64(c[x], c[y], c[z], 4) for x, y, z in _SHA512_ORDER)
    encoded += _crypt_b64(0, 0, c[63], 2)
    prefix = "$6$" if rounds == _DEFAULT_ROUNDS else f"$6$rounds={rounds}$"
    return f"{prefix}{salt_b.decode()}${encoded}"


_PASSWORD_ALPHABET = "abcdefghijkmnopqrstuvwxyz23456789"  # no l/1/0 look-alikes


def random_password(groups: int = 4, size: int = 5) -> str:
    """A random password like `k3vqa-8mzte-…` (~100 bits with the defaults), easy to type."""
    return "-".join(
        "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(size)) for _ in range(groups)
    )


# -- OpenSSH keys ---------------------------------------------------------------------------------


def openssh_ed25519_keypair(comment: str = "") -> tuple[str, str]:
    """A new ed25519 key: (private key in OpenSSH format, public key line with newline)."""
    from cryptography.hazmat.primitives import serialization  # only when keys are made (start-up time)
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, _public_line(public.decode(), comment)


def openssh_rsa_keypair(bits: int = 4096, comment: str = "") -> tuple[str, str]:
    """A new RSA key: (private key in OpenSSH format, public key line with newline)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, _public_line(public.decode(), comment)


def _public_line(public: str, comment: str) -> str:
    return f"{public} {comment}\n" if comment else f"{public}\n"


_PUBKEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/=]+( .*)?$")


def is_openssh_public_key(line: str) -> bool:
    """Whether `line` looks like one OpenSSH public key (`type base64 [comment]`)."""
    match = _PUBKEY_RE.match(line.strip())
    if match is None:
        return False
    try:
        base64.b64decode(line.split()[1], validate=True)
    except ValueError:
        return False
    return True


# -- generator runs (frozen dataclasses: equal by value) ---------------------------------------------


@dataclass(frozen=True)
class Ed25519KeyRun:
    """Generator run: a fresh ed25519 key pair into files `private` (secret) and `public`."""

    private: str
    public: str
    comment: str = ""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        priv, pub = openssh_ed25519_keypair(self.comment)
        return {self.private: priv, self.public: pub}


@dataclass(frozen=True)
class RsaKeyRun:
    """Generator run: a fresh RSA key pair into files `private` (secret) and `public`."""

    private: str
    public: str
    bits: int = 4096

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        priv, pub = openssh_rsa_keypair(self.bits)
        return {self.private: priv, self.public: pub}


@dataclass(frozen=True)
class PromptCopyRun:
    """Generator run: store prompt answers as files of the same name (Clan's `persist = true`).

    A trailing newline of a line prompt is dropped, so the stored value is exactly what was typed.
    """

    prompts: tuple[str, ...]

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        out: dict[str, bytes | str] = {}
        for name in self.prompts:
            value = inp.prompts.get(name)
            if value is None:
                raise ClanError.single("vars-error", name, f"prompt '{name}' was not answered")
            out[name] = value.removesuffix("\n")
        return out


def ssh_keygen(args: Sequence[str], generator: str) -> None:
    """Run the real `ssh-keygen` (key material as Clan makes it); a clear error when it is missing."""
    try:
        done = subprocess.run(["ssh-keygen", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ClanError.single(
            "vars-error", generator, "this generator needs `ssh-keygen`, which is not installed",
            hint="install OpenSSH's client tools (Debian: apt install openssh-client) and generate again",
        ) from None
    if done.returncode != 0:
        raise ClanError.single("vars-error", generator, f"ssh-keygen failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class SshKeygenRun:
    """Generator run: `ssh-keygen -t <type> -N "" -C <comment> -f $out/<private>`, as Clan's sshd does.

    Files: `private` (the OpenSSH private key) and `private + ".pub"` (its public line).
    """

    generator: str
    private: str
    key_type: str = "ed25519"
    bits: int | None = None
    comment: str = ""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        with tempfile.TemporaryDirectory(prefix="pyclan-ssh-keygen-") as tmp:
            path = Path(tmp) / self.private
            bits = ["-b", str(self.bits)] if self.bits else []
            ssh_keygen(["-q", "-t", self.key_type, *bits, "-N", "", "-C", self.comment, "-f", str(path)],
                       self.generator)
            public = path.with_name(f"{self.private}.pub")
            return {self.private: path.read_text(), public.name: public.read_text()}


# -- authorized keys (Clan: `users.users.<u>.openssh.authorizedKeys`) -------------------------------

# Like NixOS, keys given in the inventory go to files sshd reads *in addition to* ~/.ssh/authorized_keys,
# so keys placed on the host by other means (the admin's, pyclan's own deploy key) are never replaced.
# The users service writes one file per user; the sshd service writes root's keys to a directory of its
# own, so both can give keys to root without defining the same file twice.
USER_AUTHORIZED_KEYS_DIR = "/etc/ssh/authorized_keys.d"
SSHD_AUTHORIZED_KEYS_DIR = "/etc/ssh/authorized_keys.sshd.d"
AUTHORIZED_KEYS_CONF = "/etc/ssh/sshd_config.d/00-clan-authorized-keys.conf"
_AUTHORIZED_KEYS_CONF_TEXT = (
    "# Managed by pyclan (users and sshd services): keys from the inventory, besides the user's own file\n"
    "AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 "
    f"{USER_AUTHORIZED_KEYS_DIR}/%u {SSHD_AUTHORIZED_KEYS_DIR}/%u\n"
)
_AUTHORIZED_KEYS_HOOK = f"""set -eu
# sshd reads AuthorizedKeysFile at start: reload it once when pyclan's drop-in changed
stamp={sh_quote(HOOK_STATE_DIR + "/sshd-authorized-keys")}
new=$(sha256sum {AUTHORIZED_KEYS_CONF} | cut -d' ' -f1)
if [ "$new" != "$(cat "$stamp" 2>/dev/null || true)" ]; then
  if {SYSTEMD_BOOTED} && systemctl is-active --quiet ssh.service; then
    systemctl reload ssh.service || true
  fi
  mkdir -p "${{stamp%/*}}"
  printf '%s\\n' "$new" > "$stamp"
fi
"""


def authorized_keys_config(path: str, keys: Sequence[str]) -> MachineConfig:
    """`keys` as the authorized-keys file `path`, plus the sshd drop-in that makes sshd read it.

    Services emit the drop-in and its hook identically, so several of them merge without conflict.
    """
    cfg = MachineConfig().file(AUTHORIZED_KEYS_CONF, _AUTHORIZED_KEYS_CONF_TEXT)
    cfg.hook("sshd-authorized-keys", _AUTHORIZED_KEYS_HOOK)
    if keys:
        cfg.file(path, "# Managed by pyclan\n" + "".join(f"{k.strip()}\n" for k in keys))
    return cfg


def state_hooks(provider: str, hook: str) -> str:
    """POSIX sh for a backup provider: run `hook` (`pre-backup`, …) of every state of the machine
    that has one; fail once all ran if any failed (as Clan does)."""
    return f"""failed=""
for state in {STATE_DIR}/*/; do
    [ -x "${{state}}{hook}" ] || continue
    echo "{provider}: running {hook} command of $(basename "$state")"
    "${{state}}{hook}" || failed="$failed $(basename "$state")"
done
if [ -n "$failed" ]; then
    echo "{provider}: {hook} commands failed for:$failed" >&2
    exit 1
fi
"""
