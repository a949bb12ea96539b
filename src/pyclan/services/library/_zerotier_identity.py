"""ZeroTier identities ("type 0": C25519), implemented from ZeroTier's public identity format.

Kept apart from the service because it is cryptography, not configuration: a Curve25519 + Ed25519
key pair whose memory-hard hash (SHA-512 + Salsa20 over 2 MiB, ZeroTier's identity proof of work)
starts with a byte below 17; the address is the hash's last 5 bytes. The result is an identity
zerotier-one accepts (`locallyValidate`). This takes ~15 hash attempts on average: ~5 s per identity
with the system's libsodium (Salsa20 in C), ~20 s in pure Python where libsodium is missing.
Also here: the addresses derived from a node id (RFC4193).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

_HASHCASH_FIRST_BYTE_LESS_THAN = 17
_GEN_MEMORY = 2 * 1024 * 1024
_SALSA_CONSTANTS = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"
_M32 = 0xFFFFFFFF


def _salsa20_python(key: bytes, nonce: bytes, nbytes: int) -> bytes:
    """Salsa20/20 key stream, all blocks at once: each 32-bit word is a big int with one 64-bit lane
    per block, so every round is a few dozen big-int operations instead of a Python loop per block."""
    n = nbytes // 64
    lane_ones = int.from_bytes(b"\xff\xff\xff\xff\x00\x00\x00\x00" * n, "little")  # 2^32-1 in every lane
    unit = lane_ones // _M32  # 1 in every lane

    def splat(v: int) -> int:
        return unit * v

    k = struct.unpack("<8I", key)
    nn = struct.unpack("<2I", nonce)
    lo = int.from_bytes(b"".join(struct.pack("<Q", i & _M32) for i in range(n)), "little")
    hi = int.from_bytes(b"".join(struct.pack("<Q", i >> 32) for i in range(n)), "little")
    start = [
        splat(_SALSA_CONSTANTS[0]), splat(k[0]), splat(k[1]), splat(k[2]),
        splat(k[3]), splat(_SALSA_CONSTANTS[1]), splat(nn[0]), splat(nn[1]),
        lo, hi, splat(_SALSA_CONSTANTS[2]), splat(k[4]),
        splat(k[5]), splat(k[6]), splat(k[7]), splat(_SALSA_CONSTANTS[3]),
    ]  # fmt: skip
    x = list(start)
    m = lane_ones

    def quarter(a: int, b: int, c: int, d: int) -> None:
        for dst, s1, s2, r in ((b, a, d, 7), (c, b, a, 9), (d, c, b, 13), (a, d, c, 18)):
            v = (x[s1] + x[s2]) & m
            x[dst] ^= ((v << r) & m) | ((v >> (32 - r)) & m)

    double_round = (
        (0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),  # columns
        (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14),  # rows
    )  # fmt: skip
    for _ in range(10):
        for a, b, c, d in double_round:
            quarter(a, b, c, d)
    out = bytearray(64 * n)
    for w in range(16):
        lanes = ((x[w] + start[w]) & m).to_bytes(8 * n, "little")
        for j in range(4):
            out[w * 4 + j :: 64] = lanes[j::8]
    return bytes(out)


@cache
def _libsodium_stream() -> Callable[[bytes, bytes, int], bytes] | None:
    """Salsa20 from the system's libsodium (Debian: libsodium23), or None if it is not installed."""
    import ctypes  # only when an identity is made or checked (start-up time)
    import ctypes.util
    name = ctypes.util.find_library("sodium")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        fn = lib.crypto_stream_salsa20
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_char_p]
    fn.restype = ctypes.c_int

    def stream(key: bytes, nonce: bytes, nbytes: int) -> bytes:
        buf = ctypes.create_string_buffer(nbytes)
        if fn(buf, nbytes, nonce, key) != 0:
            raise RuntimeError("libsodium crypto_stream_salsa20 failed")
        return buf.raw

    return stream


def salsa20_stream(key: bytes, nonce: bytes, nbytes: int, *, use_libsodium: bool = True) -> bytes:
    """`nbytes` (a multiple of 64) of the Salsa20/20 key stream for a 32-byte key and 8-byte nonce."""
    fast = _libsodium_stream() if use_libsodium else None
    return fast(key, nonce, nbytes) if fast is not None else _salsa20_python(key, nonce, nbytes)


def memory_hard_hash(public_key: bytes, *, use_libsodium: bool = True) -> bytes:
    """ZeroTier's identity hash of a 64-byte public key (the 64-byte digest).

    SHA-512 of the key seeds Salsa20; 2 MiB are filled chaining each 64-byte block into the next, then
    the digest is mixed with data-dependent swaps through that memory, one Salsa20 block per step.
    Words are handled as big-endian integers throughout (swaps and XOR do not care about byte order).
    """
    digest = hashlib.sha512(public_key).digest()
    blocks = _GEN_MEMORY // 64
    steps = _GEN_MEMORY // 16  # two 8-byte words per step
    stream = salsa20_stream(digest[:32], digest[32:40], _GEN_MEMORY + 64 * steps, use_libsodium=use_libsodium)
    # memory block i = key stream block 0 ^ … ^ block i (CBC-like over zeros): a prefix XOR by doubling
    total = int.from_bytes(stream[:_GEN_MEMORY], "big")
    shift = 512
    while shift < blocks * 512:
        total ^= total >> shift
        shift *= 2
    words = list(struct.unpack(f">{_GEN_MEMORY // 8}Q", total.to_bytes(_GEN_MEMORY, "big")))
    frombytes = int.from_bytes
    mix = [frombytes(stream[off : off + 64], "big") for off in range(_GEN_MEMORY, len(stream), 64)]
    shifts = [448 - 64 * i for i in range(8)]
    mask64 = 0xFFFFFFFFFFFFFFFF
    index_mask = _GEN_MEMORY // 8 - 1
    d = frombytes(digest, "big")
    for step in range(steps):
        s = shifts[words[2 * step] & 7]
        idx = words[2 * step + 1] & index_mask
        w = (d >> s) & mask64
        d ^= ((w ^ words[idx]) << s) ^ mix[step]
        words[idx] = w
    return d.to_bytes(64, "big")


@dataclass(frozen=True)
class ZeroTierIdentity:
    """A ZeroTier identity: 40-bit address, 64-byte public key (X25519 ‖ Ed25519), optional private key."""

    address: str  # 10 hex digits
    public: bytes
    private: bytes | None = None

    def public_string(self) -> str:
        return f"{self.address}:0:{self.public.hex()}"

    def secret_string(self) -> str:
        if self.private is None:
            raise ValueError("this identity has no private key")
        return f"{self.public_string()}:{self.private.hex()}"

    @classmethod
    def parse(cls, text: str) -> ZeroTierIdentity:
        """Parse `address:0:public[:private]` (identity.public / identity.secret)."""
        parts = text.strip().split(":")
        if len(parts) not in (3, 4) or parts[1] != "0" or len(parts[0]) != 10:
            raise ValueError(f"not a type-0 ZeroTier identity: {text[:40]!r}…")
        public = bytes.fromhex(parts[2])
        private = bytes.fromhex(parts[3]) if len(parts) == 4 else None
        if len(public) != 64 or (private is not None and len(private) != 64):
            raise ValueError("ZeroTier identity keys must be 64 bytes")
        int(parts[0], 16)
        return cls(parts[0].lower(), public, private)

    def locally_validate(self, *, use_libsodium: bool = True) -> bool:
        """What zerotier-one checks before it accepts an identity: proof of work and address."""
        if _reserved_address(self.address):
            return False
        digest = memory_hard_hash(self.public, use_libsodium=use_libsodium)
        return digest[0] < _HASHCASH_FIRST_BYTE_LESS_THAN and digest[59:].hex() == self.address

    def keys_match(self) -> bool:
        """Whether the private key belongs to the public key (both halves)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
        if self.private is None:
            return False
        dh = x25519.X25519PrivateKey.from_private_bytes(self.private[:32]).public_key()
        ed = ed25519.Ed25519PrivateKey.from_private_bytes(self.private[32:]).public_key()
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        return dh.public_bytes(*raw) + ed.public_bytes(*raw) == self.public


def _reserved_address(address: str) -> bool:
    return address.startswith("ff") or int(address, 16) == 0


def generate_identity(*, use_libsodium: bool = True) -> ZeroTierIdentity:
    """A new identity, searching key pairs until the hash meets ZeroTier's proof of work."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_seed = ed.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    ed_public = ed.public_key().public_bytes(*raw)
    while True:
        dh_private = secrets.token_bytes(32)
        dh_public = x25519.X25519PrivateKey.from_private_bytes(dh_private).public_key().public_bytes(*raw)
        public = dh_public + ed_public
        digest = memory_hard_hash(public, use_libsodium=use_libsodium)
        address = digest[59:].hex()
        if digest[0] < _HASHCASH_FIRST_BYTE_LESS_THAN and not _reserved_address(address):
            return ZeroTierIdentity(address, public, dh_private + ed_seed)


def rfc4193_address(network_id: str, node_id: str) -> ipaddress.IPv6Address:
    """A member's IPv6 address in a network with RFC4193 assignment (`fd` + nwid + `9993` + node id)."""
    nwid = int(network_id, 16).to_bytes(8, "big")
    node = int(node_id, 16).to_bytes(5, "big")
    return ipaddress.IPv6Address(b"\xfd" + nwid + b"\x99\x93" + node)


def node_id_of(value: str) -> str:
    """The node id in an `allowedIps` entry: a member's RFC4193 address or the 10-hex-digit id itself."""
    text = value.strip().lower()
    if len(text) == 10 and all(c in "0123456789abcdef" for c in text):
        return text
    return ipaddress.IPv6Address(text).packed[11:].hex()
