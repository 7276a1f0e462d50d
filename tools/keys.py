"""Key generation for `task init`, in plain Python: an age X25519 identity (what `age-keygen` writes).

X25519 follows RFC 7748 (section 5, the Montgomery ladder) and the identity's encoding follows the age
specification (C2SP age.md: Bech32 of the 32-byte scalar with HRP `age-secret-key-`, upper case; the recipient
is Bech32 of the public key with HRP `age`). Bech32 is BIP-173's. tests/test_first_deploy.py checks the RFC 7748
and BIP-173 test vectors.
"""

from __future__ import annotations

import os

_P = 2**255 - 19
_A24 = 121665
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def x25519(scalar: bytes, u: bytes) -> bytes:
    """RFC 7748 X25519(k, u)."""
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    n = int.from_bytes(k, "little")
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3, swap = 1, 0, x1, 1, 0
    for t in reversed(range(255)):
        bit = (n >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % _P, (x2 - z2) % _P
        aa, bb = a * a % _P, b * b % _P
        e = (aa - bb) % _P
        c, d = (x3 + z3) % _P, (x3 - z3) % _P
        da, cb = d * a % _P, c * b % _P
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + _A24 * e) % _P
    if swap:
        x2, x3, z2, z3 = x3, x2, z3, z2
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def _polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32_encode(hrp: str, data5: list[int]) -> str:
    """BIP-173 Bech32 of 5-bit groups `data5` under `hrp`."""
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _polymod(expanded + data5 + [0] * 6) ^ 1
    checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[d] for d in data5 + checksum)


def to_5bit(data: bytes) -> list[int]:
    acc, bits, out = 0, 0, []
    for byte in data:
        acc = (acc << 8) | byte
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append((acc >> bits) & 31)
    if bits:
        out.append((acc << (5 - bits)) & 31)
    return out


def age_keypair(scalar: bytes | None = None) -> tuple[str, str]:
    """(identity `AGE-SECRET-KEY-1...`, recipient `age1...`), from `scalar` or 32 fresh random bytes."""
    secret = scalar if scalar is not None else os.urandom(32)
    public = x25519(secret, (9).to_bytes(32, "little"))
    return bech32_encode("age-secret-key-", to_5bit(secret)).upper(), bech32_encode("age", to_5bit(public))
