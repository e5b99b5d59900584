from typing import Literal
from uuid import uuid4

import orjson
import pytest

from events import codec
from events.codec import EventDecodeError, decode, encode
from events.models import EVENT_CLASSES, Event
from tests import factories as f


def all_event_kinds():
    job = uuid4()
    return [
        f.job_submitted(job, 3),
        f.cancel_requested(job),
        f.item_submitted(job, 0),
        f.succeeded(job, 0),
        f.failed(job, 1),
        f.cancelled(job, 2),
    ]


@pytest.mark.parametrize("event", all_event_kinds(), ids=lambda e: e.event_type)
def test_every_event_round_trips(event):
    assert decode(encode(event)) == event


def test_every_event_class_is_covered_by_the_round_trip():
    assert {e.event_type for e in all_event_kinds()} == set(EVENT_CLASSES)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "empty"),
        (b"\xff\xfe not json", "invalid_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"event_type": "Nope", "schema_version": 1}', "unknown_event_type"),
        (b'{"schema_version": 1}', "unknown_event_type"),
    ],
)
def test_undecodable_bytes_raise_one_error_type(data, reason):
    with pytest.raises(EventDecodeError) as caught:
        decode(data)
    assert caught.value.reason == reason


def test_schema_violation_names_the_field():
    payload = f.as_dict(f.item_submitted(uuid4(), 0))
    payload["item_index"] = -1
    with pytest.raises(EventDecodeError) as caught:
        decode(orjson.dumps(payload))
    assert caught.value.reason == "schema_violation"
    assert "item_index" in caught.value.message
    assert caught.value.payload is not None  # the worker still learns the item's address


def test_unknown_fields_are_rejected():
    payload = f.as_dict(f.succeeded(uuid4(), 0))
    payload["status"] = "success"
    with pytest.raises(EventDecodeError, match="status"):
        decode(orjson.dumps(payload))


def test_naive_timestamps_are_rejected():
    payload = f.as_dict(f.succeeded(uuid4(), 0))
    payload["occurred_at"] = "2026-01-01T00:00:00"
    with pytest.raises(EventDecodeError) as caught:
        decode(orjson.dumps(payload))
    assert caught.value.reason == "schema_violation"


def test_a_newer_schema_version_is_unknown():
    payload = f.as_dict(f.succeeded(uuid4(), 0))
    payload["schema_version"] = 2
    with pytest.raises(EventDecodeError) as caught:
        decode(orjson.dumps(payload))
    assert caught.value.reason == "unknown_schema_version"


def test_oversized_events_are_rejected_before_parsing():
    with pytest.raises(EventDecodeError) as caught:
        decode(b"{" + b" " * 2000 + b"}", max_bytes=1000)
    assert caught.value.reason == "oversized"


class ThingV2(Event):
    """A test-only contract at version 2, whose v1 called ``reason`` ``why``."""

    event_type: Literal["Thing"] = "Thing"
    schema_version: Literal[2] = 2
    reason: str


def _thing(version: int, **fields):
    return {
        "event_id": str(uuid4()),
        "event_type": "Thing",
        "schema_version": version,
        "occurred_at": "2026-01-01T00:00:00Z",
        "job_id": str(uuid4()),
        **fields,
    }


@pytest.fixture
def thing_contract(monkeypatch):
    monkeypatch.setitem(EVENT_CLASSES, "Thing", ThingV2)

    def v1_to_v2(old):
        new = dict(old)
        new["reason"] = new.pop("why")
        return new

    monkeypatch.setitem(codec.UPCASTERS, ("Thing", 1), v1_to_v2)


def test_an_old_version_is_upcast_before_validation(thing_contract):
    event = decode(orjson.dumps(_thing(1, why="because")))
    assert isinstance(event, ThingV2)
    assert event.reason == "because"
    assert event.schema_version == 2


def test_the_current_version_needs_no_upcast(thing_contract):
    assert decode(orjson.dumps(_thing(2, reason="now"))).reason == "now"


def test_a_version_without_an_upcaster_is_unknown(thing_contract, monkeypatch):
    monkeypatch.delitem(codec.UPCASTERS, ("Thing", 1))
    with pytest.raises(EventDecodeError) as caught:
        decode(orjson.dumps(_thing(1, why="x")))
    assert caught.value.reason == "unknown_schema_version"


def test_an_oversized_event_still_names_its_item():
    payload = f.as_dict(f.item_submitted(uuid4(), 9))
    payload["input"] = {"blob": "x" * 5000}
    with pytest.raises(EventDecodeError) as caught:
        decode(orjson.dumps(payload), max_bytes=1000)
    assert caught.value.reason == "oversized"
    assert caught.value.payload == {"job_id": payload["job_id"], "item_index": 9}
