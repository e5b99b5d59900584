"""``batchctl dlq redrive`` sends a letter only to the topic its event type belongs on under
this deployment's prefix, and only when that is where it came from: a letter's headers are
whatever its publisher wrote."""

from uuid import uuid4

import orjson
import pytest

from events.codec import encode
from events.models import ItemFailed, ItemSubmitted, JobSubmitted
from streaming.dead_letters import HEADER_TOPIC
from streaming.letters import CannotRedrive, Letter, target_topic
from streaming.settings import KafkaSettings

SETTINGS = KafkaSettings(BATCH_TOPIC_PREFIX="acme.")
JOB = uuid4()


def _letter(value: bytes | None, source: str) -> Letter:
    return Letter(0, 7, 0, None, value, {HEADER_TOPIC: source.encode()})


@pytest.mark.parametrize(
    ("event", "topic"),
    [
        (
            ItemSubmitted.new(job_id=JOB, item_index=0, job_type="query", input={}),
            "acme.items.query",
        ),
        (JobSubmitted.new(job_id=JOB, job_type="query", user_id="u", total_items=1), "acme.jobs"),
        (
            ItemFailed.new(job_id=JOB, item_index=0, error_code="e", error_message="m"),
            "acme.outcomes",
        ),
    ],
)
def test_a_letter_goes_back_where_its_event_belongs(event, topic):
    assert target_topic(SETTINGS, _letter(encode(event), topic)) == topic


def test_a_schema_violation_of_a_known_type_can_still_go_back():
    event = orjson.loads(
        encode(JobSubmitted.new(job_id=JOB, job_type="q", user_id="u", total_items=1))
    )
    event["schema_version"] = 2  # an upcaster deployed since
    assert target_topic(SETTINGS, _letter(orjson.dumps(event), "acme.jobs")) == "acme.jobs"


@pytest.mark.parametrize(
    ("value", "source", "needle"),
    [
        (None, "acme.jobs", "not an event"),
        (b"\x00garbage", "acme.jobs", "not an event"),
        (b'{"event_type": "Shutdown"}', "acme.jobs", "not an event"),
        (b'{"event_type": "JobSubmitted"}', "__consumer_offsets", "belongs on 'acme.jobs'"),
        (b'{"event_type": "JobSubmitted"}', "other.jobs", "belongs on 'acme.jobs'"),
        (b'{"event_type": "ItemSubmitted", "job_type": "query"}', "acme.jobs", "acme.items.query"),
        (b'{"event_type": "ItemSubmitted", "job_type": "../x"}', "acme.items.query", "job_type"),
        (b'{"event_type": "ItemSubmitted"}', "acme.items.query", "job_type"),
    ],
)
def test_a_letter_that_does_not_say_where_it_belongs_is_not_redriven(value, source, needle):
    with pytest.raises(CannotRedrive, match=needle):
        target_topic(SETTINGS, _letter(value, source))
