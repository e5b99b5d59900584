"""`batchctl dlq list|show|redrive` on the real dead-letter topic: what the worker rejected
is listed with its reason and source, shown whole, and redriven to its source topic."""

import asyncio
import json
import subprocess
import sys

from aiokafka.structs import TopicPartition

from streaming.clients import make_consumer
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
    asyncio.run(
        publish(
            kafka_settings,
            [(topic, b"dlq-test-1", b"{not json"), (topic, b"dlq-test-2", b'{"event_type": 1}')],
        )
    )
    new = wait_for(
        lambda: (
            len(found := [x for x in letters(stack_env) if x["id"] not in before]) >= 2 and found
        ),
        60,
        "two new dead letters",
    )
    assert sorted(x["reason"] for x in new) == ["invalid_json", "unknown_event_type"], new
    assert all(x["source_topic"] == topic for x in new)
    garbage = next(x for x in new if x["reason"] == "invalid_json")

    shown = batchctl(stack_env, "dlq", "show", garbage["id"])
    assert shown.returncode == 0
    detail = json.loads(shown.stdout)
    assert detail["value"] == "{not json" and detail["headers"]["dlq.source.key"] == "dlq-test-1"

    redriven = batchctl(stack_env, "dlq", "redrive", garbage["id"])
    assert redriven.returncode == 0, redriven.stderr
    assert f"redrove {garbage['id']} (invalid_json) to {topic}" in redriven.stdout
    again = asyncio.run(last_record(kafka_settings, topic, b"dlq-test-1"))
    assert again.value == b"{not json"
    assert (("dlq.redriven.from", garbage["id"].encode())) in list(again.headers)

    missing = batchctl(stack_env, "dlq", "show", "99:99999")
    assert missing.returncode == 1 and "no letter" in missing.stderr
    nothing = batchctl(stack_env, "dlq", "redrive")
    assert nothing.returncode == 1 and "--all" in nothing.stderr
