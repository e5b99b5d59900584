"""Ed25519 key validity (canonical points of the prime-order subgroup) and strict
verification; keys and signatures are made by another implementation (``cryptography``)."""

import os

import pytest
from nacl.bindings import crypto_core_ed25519_add

from archive_jobs.signatures import fingerprint, is_valid_public_key, verify
from tests.support.devices import Device

ORDER = 2**252 + 27742317777372353535851937790883648493

SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
]


def test_real_keys_are_valid_and_their_signatures_verify():
    for _ in range(50):
        device = Device()
        assert is_valid_public_key(device.raw_public_key)
        message = os.urandom(32)
        signature = device.key.sign(message)
        assert verify(device.raw_public_key, signature, message)
        assert not verify(device.raw_public_key, signature, os.urandom(32))
        assert not verify(Device().raw_public_key, signature, message)
        assert not verify(device.raw_public_key, signature[:63], message)


@pytest.mark.parametrize("encoded", SMALL_ORDER)
def test_small_order_points_are_refused(encoded):
    assert not is_valid_public_key(bytes.fromhex(encoded))


def test_wrong_lengths_and_non_canonical_encodings_are_refused():
    assert not is_valid_public_key(os.urandom(31))
    assert not is_valid_public_key(b"\xff" * 32)  # y >= p


def test_random_strings_are_rarely_keys():
    # Half of all y encode a curve point, and one point in eight is in the prime-order
    # subgroup: about 1 in 16.
    valid = sum(is_valid_public_key(os.urandom(32)) for _ in range(4000))
    assert 100 < valid < 400


def test_a_key_with_a_small_order_component_is_refused():
    device = Device()
    for torsion in SMALL_ORDER[1:]:
        mixed = crypto_core_ed25519_add(device.raw_public_key, bytes.fromhex(torsion))
        assert mixed != device.raw_public_key
        assert not is_valid_public_key(mixed)


def test_a_malleated_signature_is_refused():
    """S + L (the group order) verifies the same equation; strict verification refuses it."""
    device = Device()
    message = os.urandom(32)
    signature = device.key.sign(message)
    s = int.from_bytes(signature[32:], "little") + ORDER
    malleated = signature[:32] + s.to_bytes(32, "little")
    assert verify(device.raw_public_key, signature, message)
    assert not verify(device.raw_public_key, malleated, message)


def test_fingerprint_is_sha256_hex_of_the_raw_key():
    assert fingerprint(b"\x00" * 32) == (
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    )
