"""Upstream systems publish straight to the topics. Poison events go to the dead-letter
topic with their reasons; an event that still names its item fails that item, so the job
can finish; the worker keeps going."""

import asyncio
import uuid

import orjson
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from events.codec import encode
from events.models import ItemSubmitted, ItemSucceeded, JobSubmitted
from streaming.clients import connection_options
from streaming.dead_letters import HEADER_OFFSET, HEADER_REASON, HEADER_TOPIC
from tests.integration.conftest import publish, wait_for


async def read_dead_letters(settings, expected: int, key: bytes) -> list:
    """The letters of records published with ``key`` (other tests share the topic)."""
    consumer = AIOKafkaConsumer(
        settings.topics.dlq,
        **connection_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    letters: list = []
    try:
        async with asyncio.timeout(60):
            while len(letters) < expected:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    letters.extend(r for r in records if r.key == key)
        await asyncio.sleep(1)  # nothing more should arrive
        for records in (await consumer.getmany(timeout_ms=500)).values():
            letters.extend(r for r in records if r.key == key)
    finally:
        await consumer.stop()
    return letters


def test_poison_events_are_dead_lettered_and_the_job_still_completes(
    kafka_settings, engine, processes
):
    processes.start("worker", "--job-type", "query")
    processes.start("projector")
    topics = kafka_settings.topics
    job_id = uuid.uuid4()
    key = str(job_id).encode()

    def item(index: int, payload: dict) -> bytes:
        return encode(
            ItemSubmitted.new(job_id=job_id, item_index=index, job_type="query", input=payload)
        )

    schema_violation = orjson.loads(item(3, {"content_hash": "0" * 64}))
    schema_violation["unexpected"] = "field"
    from_the_future = orjson.loads(item(4, {"content_hash": "0" * 64}))
    from_the_future["schema_version"] = 99
    oversized = item(5, {"content_hash": "0" * 64, "padding": "x" * 1_100_000})
    job_submitted = encode(
        JobSubmitted.new(job_id=job_id, job_type="query", user_id="upstream", total_items=6)
    )
    messages = [
        (topics.jobs, key, job_submitted),
        (topics.items("query"), key, job_submitted),  # the wrong topic for it
        (topics.items("query"), key, item(0, {"content_hash": "a" * 64})),
        (topics.items("query"), key, b"\x00\x01 not json at all"),
        (topics.items("query"), key, item(1, {"content_hash": "not a hash"})),
        (topics.items("query"), key, orjson.dumps(schema_violation)),
        (topics.items("query"), key, item(2, {"device_id": "d-1"})),
        (topics.items("query"), key, orjson.dumps(from_the_future)),
        (topics.items("query"), key, oversized),
    ]
    asyncio.run(publish(kafka_settings, messages))

    def job_row():
        with engine.connect() as conn:
            return (
                conn.execute(
                    text("SELECT * FROM jobs WHERE id = :id AND status = 'completed'"),
                    {"id": job_id},
                )
                .mappings()
                .one_or_none()
            )

    job = wait_for(job_row, 90, "the upstream job to complete")
    assert (job["success_items"], job["failed_items"], job["processed_items"]) == (2, 4, 6)
    with engine.connect() as conn:
        errors = dict(
            conn.execute(
                text(
                    "SELECT item_index, error_code FROM items"
                    " WHERE job_id = :id AND status = 'failed'"
                ),
                {"id": job_id},
            ).all()
        )
    assert errors == {
        1: "invalid_input",
        3: "malformed_event",
        4: "malformed_event",
        5: "malformed_event",
    }

    letters = asyncio.run(read_dead_letters(kafka_settings, expected=5, key=key))
    reasons = sorted(dict(r.headers)[HEADER_REASON].decode() for r in letters)
    assert reasons == [
        "invalid_json",
        "oversized",
        "schema_violation",
        "unexpected_event",
        "unknown_schema_version",
    ]
    for letter in letters:
        headers = dict(letter.headers)
        assert headers[HEADER_TOPIC].decode() == topics.items("query")
        assert int(headers[HEADER_OFFSET]) >= 0
        assert letter.key == key
    assert b"\x00\x01 not json at all" in [r.value for r in letters]


def test_values_the_tables_cannot_hold_are_refused_and_the_projector_goes_on(
    kafka_settings, engine, processes
):
    """Counts past 32 bits and absurd durations are valid JSON numbers; the tables' integer
    columns cannot hold them. They are schema violations: the projector passes over them
    (before, its write failed and it retried the same batch for ever), and the real
    outcomes that follow them are folded."""
    processes.start("worker", "--job-type", "query")
    processes.start("projector")
    topics = kafka_settings.topics
    job_id, refused_job = uuid.uuid4(), uuid.uuid4()
    key, refused_key = str(job_id).encode(), str(refused_job).encode()

    def submitted(index: int) -> dict:
        event = ItemSubmitted.new(
            job_id=job_id, item_index=index, job_type="query", input={"content_hash": "a" * 64}
        )
        return orjson.loads(encode(event))

    def outcome(index: int, **fields) -> bytes:
        event = ItemSucceeded.new(job_id=job_id, item_index=index, output={}, attempts=1)
        return orjson.dumps({**orjson.loads(encode(event)), **fields})

    job = orjson.loads(
        encode(JobSubmitted.new(job_id=job_id, job_type="query", user_id="up", total_items=2))
    )
    too_big_job = {**job, "job_id": str(refused_job), "total_items": 2**33}
    messages = [
        (topics.jobs, refused_key, orjson.dumps(too_big_job)),
        (topics.outcomes, key, outcome(0, attempts=2**40)),
        (topics.outcomes, key, outcome(1, duration_ms=1e300)),
        (topics.items("query"), key, orjson.dumps({**submitted(0), "item_index": 3 * 10**9})),
        (topics.jobs, key, orjson.dumps(job)),
        (topics.items("query"), key, orjson.dumps(submitted(0))),
        (topics.items("query"), key, orjson.dumps(submitted(1))),
    ]
    asyncio.run(publish(kafka_settings, messages))

    def completed():
        with engine.connect() as conn:
            return conn.execute(
                text("SELECT success_items FROM jobs WHERE id = :id AND status = 'completed'"),
                {"id": job_id},
            ).scalar_one_or_none()

    assert wait_for(completed, 90, "the job after the refused events to complete") == 2
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT attempts, duration_ms < 1e6 FROM items WHERE job_id = :id"),
            {"id": job_id},
        ).all()
        assert sorted(rows) == [(1, True), (1, True)]
        assert (
            conn.execute(
                text("SELECT count(*) FROM jobs WHERE id = :id"), {"id": refused_job}
            ).scalar_one()
            == 0
        )
    # the worker's (the item) and the projector's (the outcomes; the refused job's key), at
    # least once each (a rebalance before a batch is stored folds it, and sends them, again)
    letters = asyncio.run(read_dead_letters(kafka_settings, expected=3, key=key))
    sources = {
        (dict(r.headers)[HEADER_TOPIC].decode(), dict(r.headers)[HEADER_OFFSET]) for r in letters
    }
    assert sorted(topic for topic, _ in sources) == sorted(
        [topics.items("query"), topics.outcomes, topics.outcomes]
    )
    assert {dict(r.headers)[HEADER_REASON] for r in letters} == {b"schema_violation"}
    refused = asyncio.run(read_dead_letters(kafka_settings, expected=1, key=refused_key))
    assert {dict(r.headers)[HEADER_TOPIC].decode() for r in refused} == {topics.jobs}
