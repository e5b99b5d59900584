"""verify_then_lock_all without a database: bad signatures answer None and write nothing; a
database failure becomes one exception that crosses the process boundary."""

import os
import pickle
import uuid

import pytest

from archive_jobs.registry_store import LockRequest
from archive_jobs.verified_locks import RegistryUnavailable, verify_then_lock_all
from tests.support.devices import Device

UNREACHABLE = "postgresql://nobody:secret@127.0.0.1:1/none"


def _request(device: Device, content_hash: str, signature: bytes) -> LockRequest:
    return (
        device.raw_public_key,
        signature,
        content_hash,
        str(uuid.uuid4()),
        "device-1",
        None,
        str(uuid.uuid4()),
        0,
    )


def test_requests_whose_signatures_do_not_verify_touch_no_database():
    device = Device()
    content_hash = os.urandom(32).hex()
    wrong = device.key.sign(os.urandom(32))
    requests = [_request(device, content_hash, wrong), _request(Device(), content_hash, b"x")]
    assert verify_then_lock_all(UNREACHABLE, requests) == [None, None]


def test_a_database_failure_is_one_picklable_exception():
    device = Device()
    content_hash = os.urandom(32).hex()
    signature = device.key.sign(bytes.fromhex(content_hash))
    with pytest.raises(RegistryUnavailable) as failure:
        verify_then_lock_all(UNREACHABLE, [_request(device, content_hash, signature)])
    assert isinstance(pickle.loads(pickle.dumps(failure.value)), RegistryUnavailable)
    assert "OperationalError" in str(failure.value)
