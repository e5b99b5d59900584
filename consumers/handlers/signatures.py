"""Ed25519 keys and signatures, with ``cryptography``.

``cryptography`` loads any 32 bytes as a public key; whether they encode a point of the curve
is only found out when a signature fails. Enrollment must refuse such keys up front, so
``is_valid_public_key`` decodes the point as RFC 8032, section 5.1.3 does, and refuses the
eight points of small order (with such a key, one signature can verify for many messages).
"""

import hashlib
from functools import lru_cache
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KEY_BYTES = 32
SIGNATURE_BYTES = 64

_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def is_valid_public_key(raw: bytes) -> bool:
    """Whether ``raw`` is the RFC 8032 encoding of a point on edwards25519."""
    if len(raw) != KEY_BYTES:
        return False
    y = int.from_bytes(raw, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= _P:
        return False
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    check = v * x * x % _P
    if check == (-u) % _P:
        x = x * _SQRT_M1 % _P
    elif check != u:
        return False
    if x == 0 and sign:
        return False
    return not _is_small_order(x, y)


def _is_small_order(x: int, y: int) -> bool:
    """Whether [8]P is the neutral point: three doublings in projective coordinates."""
    X, Y, Z = x, y, 1
    for _ in range(3):
        a, b, c = X * X % _P, Y * Y % _P, 2 * Z * Z % _P
        e = ((X + Y) * (X + Y) - a - b) % _P
        g = (b - a) % _P  # a = -1 on edwards25519: D = -A, G = D + B
        f, h = (g - c) % _P, (-a - b) % _P
        X, Y, Z = e * f % _P, g * h % _P, f * g % _P
    return X == 0 and Y == Z


def fingerprint(raw_key: bytes) -> str:
    return hashlib.sha256(raw_key).hexdigest()


@lru_cache(maxsize=65_536)
def _loaded(public_key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(public_key)


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(signature) != SIGNATURE_BYTES or len(public_key) != KEY_BYTES:
        return False
    try:
        _loaded(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


class SignatureCheck(NamedTuple):
    """Raw bytes in a tuple: checks travel to the verifying process, and tuples pickle
    a hundred times faster than dataclasses."""

    public_key: bytes
    signature: bytes
    message: bytes


def verify_all(checks: list[SignatureCheck]) -> list[bool]:
    """A batch for a ``MicroBatcher``."""
    return [verify(*check) for check in checks]
