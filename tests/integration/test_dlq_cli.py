"""`batchctl dlq list|show|redrive` on the real dead-letter topic: what the worker rejected
is listed with its reason and source, shown whole, and redriven to its source topic."""

import asyncio
import json
import subprocess
import sys
import uuid

import orjson
from aiokafka.structs import TopicPartition

from events.codec import encode
from events.models import ItemSubmitted, JobSubmitted
from streaming.clients import make_consumer, make_producer
from streaming.dead_letters import HEADER_REASON, HEADER_TOPIC
from tests.integration.conftest import publish, wait_for


def batchctl(env, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "batchctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def letters(env) -> list[dict]:
    done = batchctl(env, "dlq", "list", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def last_record(settings, topic: str, key: bytes):  # type: ignore[no-untyped-def]
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found = None
        ends = await consumer.end_offsets(partitions)
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found = next((r for r in reversed(records) if r.key == key), found)
        return found
    finally:
        await consumer.stop()


def test_list_show_and_redrive_dead_letters(kafka_settings, processes, stack_env):
    topic = kafka_settings.topics.items("scripted")
    before = {letter["id"] for letter in letters(stack_env)}
    processes.start("worker", "--job-type", "scripted")
    future = orjson.loads(
        encode(ItemSubmitted.new(job_id=uuid.uuid4(), item_index=0, job_type="scripted", input={}))
    )
    future["schema_version"] = 99  # a version this deployment cannot read yet
    asyncio.run(
        publish(
            kafka_settings,
            [
                (topic, b"dlq-test-1", b"{not json"),
                (topic, b"dlq-test-2", b'{"event_type": 1}'),
                (topic, b"dlq-test-3", orjson.dumps(future)),
            ],
        )
    )
    new = wait_for(
        lambda: (
            len(found := [x for x in letters(stack_env) if x["id"] not in before]) >= 3 and found
        ),
        60,
        "three new dead letters",
    )
    assert sorted(x["reason"] for x in new) == [
        "invalid_json",
        "unknown_event_type",
        "unknown_schema_version",
    ], new
    assert all(x["source_topic"] == topic for x in new)
    garbage = next(x for x in new if x["reason"] == "invalid_json")
    newer = next(x for x in new if x["reason"] == "unknown_schema_version")

    shown = batchctl(stack_env, "dlq", "show", garbage["id"])
    assert shown.returncode == 0
    detail = json.loads(shown.stdout)
    assert detail["value"] == "{not json" and detail["headers"]["dlq.source.key"] == "dlq-test-1"

    # Bytes that are no event belong on no topic: not redriven, and nothing is published.
    refused = batchctl(stack_env, "dlq", "redrive", garbage["id"], newer["id"])
    assert refused.returncode == 1 and "belongs on no topic" in refused.stderr
    assert asyncio.run(last_record(kafka_settings, topic, b"dlq-test-3")).headers == ()

    redriven = batchctl(stack_env, "dlq", "redrive", newer["id"])
    assert redriven.returncode == 0, redriven.stderr
    assert f"redrove {newer['id']} (unknown_schema_version) to {topic}" in redriven.stdout
    again = asyncio.run(last_record(kafka_settings, topic, b"dlq-test-3"))
    assert again.value == orjson.dumps(future)
    assert (("dlq.redriven.from", newer["id"].encode())) in list(again.headers)

    missing = batchctl(stack_env, "dlq", "show", "99:99999")
    assert missing.returncode == 1 and "no letter" in missing.stderr
    nothing = batchctl(stack_env, "dlq", "redrive")
    assert nothing.returncode == 1 and "--all" in nothing.stderr


def test_a_forged_letter_is_not_redriven_to_the_topic_its_headers_name(kafka_settings, stack_env):
    """Anyone who can write to the dead-letter topic can write its headers: a letter is
    redriven only to the topic where its event type belongs under this prefix."""
    before = {letter["id"] for letter in letters(stack_env)}
    job = encode(JobSubmitted.new(job_id=uuid.uuid4(), job_type="q", user_id="u", total_items=1))
    forged = [(HEADER_TOPIC, b"__consumer_offsets"), (HEADER_REASON, b"schema_violation")]

    async def forge() -> None:
        producer = make_producer(kafka_settings)
        await producer.start()
        try:
            await producer.send_and_wait(
                kafka_settings.topics.dlq, value=job, key=b"forged", headers=forged
            )
        finally:
            await producer.stop()

    asyncio.run(forge())
    (letter,) = wait_for(
        lambda: [x for x in letters(stack_env) if x["id"] not in before], 30, "the forged letter"
    )
    redriven = batchctl(stack_env, "dlq", "redrive", letter["id"])
    assert redriven.returncode == 1
    assert "came from '__consumer_offsets'" in redriven.stderr
    assert kafka_settings.topics.jobs in redriven.stderr
    skipped = batchctl(stack_env, "dlq", "redrive", "--all", "--reason", "schema_violation")
    assert skipped.returncode == 0 and f"skipped: letter {letter['id']}" in skipped.stdout
