"""The projector's one-pass reading of the items and outcomes topics folds exactly what the
codec's decoding folds, for valid events and for every kind of broken one."""

import contextlib
import json
from uuid import UUID, uuid4

import orjson
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from events.codec import EventDecodeError, decode, encode
from projections.fold import Changes
from projections.projector import Projector
from projections.settings import ProjectorSettings
from tests import factories as f

SETTINGS = ProjectorSettings()
ITEMS, OUTCOMES = SETTINGS.topics.items("query"), SETTINGS.topics.outcomes


def _fast(topic: str, value: bytes | None) -> Changes:
    projector = Projector(SETTINGS, None, None)  # type: ignore[arg-type]
    record = ConsumerRecord(topic, 0, 5, 0, 0, b"k", value, None, 0, 0, ())
    return projector.fold({TopicPartition(topic, 0): [record]})


def _reference(topic: str, value: bytes | None) -> Changes:
    """The long way: the codec, then the fold of the event."""
    changes = Changes()
    with contextlib.suppress(EventDecodeError):
        changes.apply(decode(value))
    changes.advance(topic, 0, 5)
    return changes


def _broken_variants(valid: dict) -> list[tuple[str, dict]]:
    out = [("valid", valid)]
    for field in valid:
        out.append((f"without {field}", {k: v for k, v in valid.items() if k != field}))
    wrong = [None, "x", -1, 2**40, 1.5, True, [], {}]
    for field in valid:
        out += [(f"{field}={value!r}", {**valid, field: value}) for value in wrong]
    out.append(("job_id upper", {**valid, "job_id": valid["job_id"].upper()}))
    out.append(("event_id hex", {**valid, "event_id": UUID(valid["event_id"]).hex}))
    out.append(("schema_version 2", {**valid, "schema_version": 2}))
    out.append(("an extra field", {**valid, "extra": 1}))
    return out


def _events() -> list[tuple[str, str, dict]]:
    job = uuid4()
    return [
        (ITEMS, "submitted", orjson.loads(encode(f.item_submitted(job, 3)))),
        (OUTCOMES, "succeeded", orjson.loads(encode(f.succeeded(job, 3)))),
        (OUTCOMES, "failed", orjson.loads(encode(f.failed(job, 3)))),
        (OUTCOMES, "cancelled", orjson.loads(encode(f.cancelled(job, 3)))),
    ]


CASES = [
    (topic, f"{kind}: {case}", payload)
    for topic, kind, valid in _events()
    for case, payload in _broken_variants(valid)
]


@pytest.mark.parametrize(("topic", "case", "payload"), CASES, ids=[c for _, c, _ in CASES])
def test_fast_reading_folds_what_the_codec_folds(topic, case, payload):
    value = json.dumps(payload).encode()
    fast, reference = _fast(topic, value), _reference(topic, value)
    assert fast.items == reference.items, case
    assert (fast.events, fast.jobs, fast.positions) == (
        reference.events,
        reference.jobs,
        reference.positions,
    )


@pytest.mark.parametrize("value", [None, b"", b"{", b"[]", b"x" * 2_000_000])
@pytest.mark.parametrize("topic", [ITEMS, OUTCOMES])
def test_what_does_not_decode_is_passed_over_as_before(topic, value):
    assert _fast(topic, value).items == {} == _reference(topic, value).items


def test_another_valid_event_on_the_outcomes_topic_is_folded_as_before():
    job = uuid4()
    value = encode(f.item_submitted(job, 0))  # an upstream publisher's mistake
    assert _fast(OUTCOMES, value).items == _reference(OUTCOMES, value).items != {}


@pytest.mark.parametrize(("topic", "kind", "payload"), _events(), ids=[k for _, k, _ in _events()])
def test_every_valid_item_and_outcome_is_read_in_one_pass(topic, kind, payload, monkeypatch):
    def the_long_way(*args, **kwargs):
        raise AssertionError("decoded the long way")

    monkeypatch.setattr("projections.projector.decode", the_long_way)
    assert len(_fast(topic, orjson.dumps(payload)).items) == 1
