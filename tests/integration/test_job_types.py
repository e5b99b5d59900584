"""The enrollment, proof_lock and query handlers on real PostgreSQL, with real keys and
signatures: every rule, success and failure, and arbitration between concurrent items."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from archive_jobs.device_registry import DeviceRegistry
from archive_jobs.enrollment import EnrollmentHandler
from archive_jobs.proof_lock import ProofLockHandler, proof_id
from archive_jobs.query import QueryHandler
from events import outcome_wire
from jobtypes.contract import Handler, ItemContext, JsonOutput, PermanentError
from tests.support.devices import Device, b64, new_hash


@pytest.fixture
async def registry(database_url: str) -> AsyncIterator[DeviceRegistry]:
    registry = DeviceRegistry(database_url)
    registry.start()
    yield registry
    await registry.stop()


def context() -> ItemContext:
    return ItemContext(uuid.uuid4(), 0)


async def run(handler: Handler, item: dict, ctx: ItemContext | None = None):  # type: ignore[type-arg]
    """Handle one item; the output as its model, after holding a ``JsonOutput`` to it."""
    output = await handler.handle(handler.input_model.model_validate(item), ctx or context())
    model = handler.output_model.model_validate(output)
    if isinstance(output, JsonOutput):  # sent as is: it must be what the model would send
        event = outcome_wire.succeeded(
            str(uuid.uuid4()), 0, attempts=1, duration_ms=0, output=output
        )
        sent = orjson.loads(event)
        assert sent["output"] == model.model_dump(mode="json")
    return model


async def fails(handler: Handler, item: dict, code: str) -> str:  # type: ignore[type-arg]
    with pytest.raises(PermanentError) as raised:
        await run(handler, item)
    assert raised.value.code == code
    return raised.value.message


async def test_enrollment_rules(registry):
    enroll = EnrollmentHandler(registry)
    device = Device()
    first_ctx = context()
    first = await run(enroll, device.enrollment(platform="ios", label="cam 1"), first_ctx)
    assert first.device_id == device.device_id
    assert first.key_fingerprint == device.fingerprint
    assert first.already_enrolled is False
    assert abs((datetime.now(UTC) - first.enrolled_at).total_seconds()) < 60

    again = await run(enroll, device.enrollment())
    assert again.already_enrolled is True
    assert (again.enrolled_at, again.key_fingerprint) == (first.enrolled_at, first.key_fingerprint)

    # the first item delivered again has the outcome it had the first time
    assert await run(enroll, device.enrollment(platform="ios", label="cam 1"), first_ctx) == first

    other_key = Device(device_id=device.device_id)
    message = await fails(enroll, other_key.enrollment(), "device_key_conflict")
    assert device.fingerprint in message


@pytest.mark.parametrize(
    "raw",
    [
        os.urandom(31),
        os.urandom(33),
        b"\xff" * 32,  # y >= p
        bytes.fromhex("0100000000000000000000000000000000000000000000000000000000000000"),
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
    ],
    ids=["31 bytes", "33 bytes", "not canonical", "neutral point", "small order"],
)
async def test_enrollment_refuses_what_is_not_an_ed25519_key(registry, raw):
    enroll = EnrollmentHandler(registry)
    device = Device()
    await fails(
        enroll, {"device_id": device.device_id, "public_key": b64(raw)}, "invalid_public_key"
    )
    query = QueryHandler(registry)
    assert (await run(query, {"device_id": device.device_id})).found is False


async def test_enrollment_refuses_a_point_off_the_curve(registry):
    enroll = EnrollmentHandler(registry)
    while True:  # about half of all y coordinates have no x on the curve
        raw = bytearray(Device().raw_public_key)
        raw[0] ^= 1
        try:
            await run(enroll, {"device_id": f"d-{uuid.uuid4()}", "public_key": b64(bytes(raw))})
        except PermanentError as exc:
            assert exc.code == "invalid_public_key"
            return


async def test_proof_lock_rules(registry):
    enroll, lock = EnrollmentHandler(registry), ProofLockHandler(registry)
    alice, bob, stranger = Device(), Device(), Device()
    await run(enroll, alice.enrollment())
    await run(enroll, bob.enrollment())
    content_hash = new_hash()

    await fails(lock, stranger.lock(content_hash), "device_not_enrolled")
    await fails(
        lock, alice.lock(content_hash) | {"signature": alice.sign(new_hash())}, "invalid_signature"
    )
    await fails(lock, alice.lock(content_hash) | {"signature": b64(b"short")}, "invalid_signature")

    ctx = context()
    captured = "2026-11-01T10:30:00.250000+02:00"  # stored, and answered, as UTC
    first = await run(lock, alice.lock(content_hash.upper(), captured_at=captured), ctx)
    assert first.already_locked is False
    assert first.proof_id == proof_id(ctx.job_id, ctx.item_index)
    assert (first.content_hash, first.device_id) == (content_hash, alice.device_id)
    assert first.captured_at == datetime.fromisoformat(captured)

    # the first item delivered again has the outcome it had, to the byte
    again_first = await run(lock, alice.lock(content_hash, captured_at=captured), ctx)
    assert again_first.model_dump(mode="json") == first.model_dump(mode="json")
    assert first.model_dump(mode="json")["captured_at"] == "2026-11-01T08:30:00.250000Z"
    again = await run(lock, alice.lock(content_hash))
    assert again.already_locked is True
    assert (again.proof_id, again.locked_at) == (first.proof_id, first.locked_at)

    message = await fails(lock, bob.lock(content_hash), "already_locked")
    assert alice.device_id in message


async def test_query_by_hash_proof_id_and_device(registry):
    enroll, lock, query = (
        EnrollmentHandler(registry),
        ProofLockHandler(registry),
        QueryHandler(registry),
    )
    device = Device()
    await run(enroll, device.enrollment(platform="android", label="field unit"))
    proofs = [await run(lock, device.lock(new_hash())) for _ in range(3)]

    by_hash = await run(query, {"content_hash": proofs[1].content_hash})
    assert by_hash.found and by_hash.device is None
    assert by_hash.proof.proof_id == proofs[1].proof_id
    assert by_hash.proof.locked_at == proofs[1].locked_at
    by_id = await run(query, {"proof_id": str(proofs[2].proof_id)})
    assert by_id.found and by_id.proof.content_hash == proofs[2].content_hash

    by_device = await run(query, {"device_id": device.device_id})
    assert by_device.found and by_device.proof is None
    assert by_device.device.proofs_count == 3
    assert (by_device.device.platform, by_device.device.label) == ("android", "field unit")
    assert by_device.device.key_fingerprint == device.fingerprint

    for missing in (
        {"content_hash": new_hash()},
        {"proof_id": str(uuid.uuid4())},
        {"device_id": "nobody"},
    ):
        assert (await run(query, missing)).model_dump() == {
            "found": False,
            "proof": None,
            "device": None,
        }


async def test_concurrent_locks_of_one_hash_have_exactly_one_winner(registry, database_url):
    """Items of many devices race for the same hashes, in one batch and across two registries
    (two connections, as two worker processes have)."""
    other = DeviceRegistry(database_url)
    other.start()
    try:
        enroll = EnrollmentHandler(registry)
        devices = [Device() for _ in range(8)]
        for device in devices:
            await run(enroll, device.enrollment())
        hashes = [new_hash() for _ in range(50)]
        locks = [ProofLockHandler(registry), ProofLockHandler(other)]
        attempts = [
            (locks[n % 2], device.lock(h), ItemContext(uuid.uuid4(), n))
            for h in hashes
            for n, device in enumerate(devices)
        ]

        async def attempt(handler, item, ctx):  # type: ignore[no-untyped-def]
            try:
                return await run(handler, item, ctx)
            except PermanentError as exc:
                return exc.code

        outcomes = await asyncio.gather(*(attempt(*a) for a in attempts))
        for number, content_hash in enumerate(hashes):
            mine = outcomes[number * len(devices) : (number + 1) * len(devices)]
            winners = [o for o in mine if not isinstance(o, str)]
            assert len(winners) == 1 and winners[0].already_locked is False, content_hash
            assert [o for o in mine if isinstance(o, str)] == ["already_locked"] * 7
    finally:
        await other.stop()


async def test_a_value_postgresql_refuses_fails_only_its_item_in_a_shared_batch(registry):
    """Items in flight share one round trip; a value psycopg2 refuses (a NUL, which the
    contract keeps out of events, but a handler may still produce) fails its own item with
    ``invalid_input``, at once, and its neighbours in the batch get their answers."""
    enroll, query = EnrollmentHandler(registry), QueryHandler(registry)
    devices = [Device() for _ in range(30)]
    for device in devices:
        await run(enroll, device.enrollment())
    lookups = [query.input_model.model_validate({"device_id": d.device_id}) for d in devices]
    poisoned = query.input_model.model_construct(device_id="d\x00evil")  # past validation
    lookups.insert(17, poisoned)
    results = await asyncio.gather(
        *(query.handle(item, context()) for item in lookups), return_exceptions=True
    )
    refused = results.pop(17)
    assert isinstance(refused, PermanentError) and refused.code == "invalid_input"
    assert "NUL" in refused.message
    assert [r.device.device_id for r in results] == [d.device_id for d in devices]  # type: ignore[union-attr]
