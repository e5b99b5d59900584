"""Ed25519 keys and signatures, with PyNaCl (libsodium).

A public key is valid when it is the canonical encoding of a point of edwards25519 in the
prime-order subgroup (``crypto_core_ed25519_is_valid_point``): honestly generated keys
always are; the eight small-order points (with such a key one signature can verify for many
messages) and points with a small-order component are refused. Verification is libsodium's
strict ``crypto_sign_open``: it also refuses non-canonical signatures and small-order keys.
"""

import hashlib

from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open
from nacl.exceptions import BadSignatureError

KEY_BYTES = 32
SIGNATURE_BYTES = 64


def is_valid_public_key(raw: bytes) -> bool:
    """Whether ``raw`` is an Ed25519 public key: a canonical encoding of a point of the
    prime-order subgroup of edwards25519 (not of small order)."""
    return len(raw) == KEY_BYTES and bool(crypto_core_ed25519_is_valid_point(raw))


def fingerprint(raw_key: bytes) -> str:
    return hashlib.sha256(raw_key).hexdigest()


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    if len(signature) != SIGNATURE_BYTES or len(public_key) != KEY_BYTES:
        return False
    try:
        crypto_sign_open(signature + message, public_key)
    except BadSignatureError:
        return False
    return True
