"""The worker's fast reading of an item agrees with the one codec on every event."""

import json
from uuid import UUID, uuid4

import orjson
import pytest
from pydantic import ValidationError

from archive_jobs.noop import NoopHandler, NoopInput
from consumers.item_reader import ItemReader, UnexpectedEvent
from consumers.processing import SubmittedItem
from events.codec import EventDecodeError, decode, encode
from events.models import ItemSubmitted, JobSubmitted


def _valid() -> dict:
    event = ItemSubmitted.new(job_id=uuid4(), item_index=7, job_type="noop", input={"n": 3})
    return orjson.loads(encode(event))


def _verdict(read) -> tuple:  # type: ignore[no-untyped-def]
    """What reading a value amounts to: the item, or the kind of refusal."""
    try:
        item = read()
    except EventDecodeError as exc:
        return ("dead letter", exc.reason)
    except UnexpectedEvent:
        return ("unexpected",)
    try:
        validated = NoopInput.model_validate(item[3])
    except ValidationError:
        validated = ("raw", item[3])
    assert item[1] == str(item[0])
    return ("item", item[0], item[2], validated)


def _reference(value: bytes):  # type: ignore[no-untyped-def]
    """The slow path: the one codec, then the job type and the input model."""

    def read():  # type: ignore[no-untyped-def]
        event = decode(value)
        if not isinstance(event, ItemSubmitted) or event.job_type != "noop":
            raise UnexpectedEvent(event.event_type)
        return (event.job_id, str(event.job_id), event.item_index, event.input)

    return _verdict(read)


def _variants() -> list[tuple[str, object]]:
    """(description, payload): every field missing, and every field wrong in several ways."""
    valid = _valid()
    out: list[tuple[str, object]] = [("valid", valid)]
    for field in valid:
        out.append((f"without {field}", {k: v for k, v in valid.items() if k != field}))
    wrong = {
        "event_id": [None, "x", valid["event_id"].upper(), UUID(valid["event_id"]).hex, 5],
        "event_type": ["ItemSucceeded", "JobSubmitted", "Nope", None],
        "schema_version": [0, 2, "1", True, None, 1.0],
        "occurred_at": ["2026-11-28T10:00:00", "yesterday", 0, None, "2026-11-28T10:00:00+02:00"],
        "job_id": [valid["job_id"].upper(), "{" + valid["job_id"] + "}", "", None],
        "job_type": ["other", "", None, "Noop"],
        "item_index": [-1, "7", 7.0, 7.5, None, 2**70],
        "input": [{"n": "x"}, {}, {"n": 1, "extra": 2}, [], None, "n"],
    }
    for field, values in wrong.items():
        for value in values:
            out.append((f"{field}={value!r}", {**valid, field: value}))
    out.append(("an extra field", {**valid, "extra": 1}))
    out.append(("not an object", [valid]))
    return out


@pytest.mark.parametrize(("case", "payload"), _variants(), ids=[c for c, _ in _variants()])
def test_fast_reading_agrees_with_the_codec(case, payload):
    value = json.dumps(payload).encode()  # not orjson: it refuses integers past 64 bits
    reader = ItemReader(NoopHandler())
    assert _verdict(lambda: reader.read(value)) == _reference(value), case


@pytest.mark.parametrize("value", [None, b"", b"{", b"\xff\xfe", b"[]", b"null", b"x" * 2_000_000])
def test_what_is_not_json_or_too_big_is_refused_as_the_codec_refuses_it(value):
    reader = ItemReader(NoopHandler())
    assert _verdict(lambda: reader.read(value)) == _reference(value)


def test_another_event_on_the_items_topic_is_unexpected():
    event = JobSubmitted.new(job_id=uuid4(), job_type="noop", user_id="u", total_items=1)
    with pytest.raises(UnexpectedEvent):
        ItemReader(NoopHandler()).read(encode(event))


def test_a_valid_item_arrives_as_the_input_model():
    payload = _valid()
    item = ItemReader(NoopHandler()).read(orjson.dumps(payload))
    assert item.item == NoopInput(n=3) and item.item_index == 7
    assert item.job_id == UUID(payload["job_id"]) and item.job_text == payload["job_id"]


def test_reading_a_batch_gives_each_value_its_item_or_its_refusal():
    values = [json.dumps(payload).encode() for _, payload in _variants()]
    values += [None, b"{", b"x" * 2_000_000]
    values.append(
        encode(JobSubmitted.new(job_id=uuid4(), job_type="noop", user_id="u", total_items=1))
    )
    reader = ItemReader(NoopHandler())

    def raising(result):  # type: ignore[no-untyped-def]
        def read():  # type: ignore[no-untyped-def]
            if isinstance(result, Exception):
                raise result
            return result

        return read

    read = reader.read_all(values)
    assert len(read) == len(values)
    for value, result in zip(values, read, strict=True):
        assert _verdict(raising(result)) == _verdict(lambda v=value: reader.read(v))
    assert {type(r) for r in read} == {SubmittedItem, EventDecodeError, UnexpectedEvent}


def test_a_bug_in_reading_one_value_does_not_stop_the_batch(monkeypatch):
    reader = ItemReader(NoopHandler())
    good = orjson.dumps(_valid())
    real_read = reader.read

    def read(value):  # type: ignore[no-untyped-def]
        if value == b"bug":
            raise RuntimeError("a bug")
        return real_read(value)

    monkeypatch.setattr(reader, "read", read)
    first, bug, last = reader.read_all([good, b"bug", good])
    assert type(first) is SubmittedItem and type(last) is SubmittedItem
    assert isinstance(bug, RuntimeError)
