"""Ed25519 key validity (RFC 8032 decoding, small-order points refused) and verification."""

import os

import pytest

from consumers.handlers.signatures import fingerprint, is_valid_public_key, verify
from tests.support.devices import Device

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


def test_about_half_of_random_strings_are_curve_points():
    valid = sum(is_valid_public_key(os.urandom(32)) for _ in range(400))
    assert 120 < valid < 280


def test_fingerprint_is_sha256_hex_of_the_raw_key():
    assert fingerprint(b"\x00" * 32) == (
        "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    )
