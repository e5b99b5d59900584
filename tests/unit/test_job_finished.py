"""The JobFinished contract: built the same from the same outbox row (so a republished one
is a duplicate by its id), decoded by the notifications codec, upcast like the others."""

import uuid

import pytest

from events import codec
from events.codec import EventDecodeError, decode, decode_notification, encode
from projections.announcer import job_finished

JOB = uuid.UUID("00000000-0000-4000-8000-000000000001")
FACTS = {
    "user_id": "alice",
    "job_type": "query",
    "status": "completed",
    "total_items": 3,
    "success_items": 2,
    "failed_items": 1,
    "cancelled_items": 0,
    "success_rate": 0.6667,
    "created_at": "2026-12-06T10:00:00+00:00",
    "started_at": "2026-12-06T10:00:01.5+00:00",
    "finished_at": "2026-12-06T10:00:02.25+00:00",
    "top_errors": [{"code": "not_found", "count": 1}],
    "metadata": {"ref": "x"},
}


def test_the_same_row_makes_the_same_event_byte_for_byte():
    first = encode(job_finished(JOB, "completed", FACTS, "https://batch.example/"))
    again = encode(job_finished(JOB, "completed", dict(FACTS), "https://batch.example"))
    assert first == again
    event = decode_notification(first)
    assert event.links.job == f"https://batch.example/batch/jobs/{JOB}"
    assert event.occurred_at == event.finished_at
    cancelled = job_finished(JOB, "cancelled", {**FACTS, "status": "cancelled"}, "http://x")
    assert cancelled.event_id != event.event_id  # the id names the final status


@pytest.mark.parametrize(
    "change",
    [
        {"status": "failed"},
        {"success_rate": 1.5},
        {"user_id": "a\x00b"},
        {"top_errors": [{"code": "x", "count": 1}] * 6},
        {"total_items": 2**63},
        {"surprise": 1},
    ],
)
def test_a_job_finished_that_breaks_the_contract_is_refused(change):
    good = encode(job_finished(JOB, "completed", FACTS, "http://x"))
    import json

    bad = json.dumps({**json.loads(good), **change}).encode()
    with pytest.raises(EventDecodeError):
        decode_notification(bad)


def test_it_is_not_an_event_of_the_folded_topics():
    data = encode(job_finished(JOB, "completed", FACTS, "http://x"))
    with pytest.raises(EventDecodeError) as refused:
        decode(data)  # (one published on batch.jobs is dead-lettered, never folded)
    assert refused.value.reason == "unknown_event_type"


def test_an_older_version_is_upcast(monkeypatch):
    import json

    current = json.loads(encode(job_finished(JOB, "completed", FACTS, "http://x")))
    from events.models import JobFinished

    class JobFinishedV2(JobFinished):
        schema_version: int = 2  # type: ignore[assignment]
        region: str

    def to_v2(payload):
        return {**payload, "region": "eu"}

    monkeypatch.setitem(codec.NOTIFICATION_CLASSES, "JobFinished", JobFinishedV2)
    monkeypatch.setitem(codec.UPCASTERS, ("JobFinished", 1), to_v2)
    codec._VERSIONS.clear()
    try:
        upcast = decode_notification(json.dumps(current).encode())
    finally:
        codec._VERSIONS.clear()
    assert upcast.region == "eu" and upcast.schema_version == 2  # type: ignore[attr-defined]
