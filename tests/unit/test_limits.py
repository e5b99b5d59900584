"""The contract's limits (``events.limits``): what they refuse, and that every reader of an
event — the codec, the worker's fast reading, the projector's — gives the same verdict on
values past them."""

import json
from typing import Any
from uuid import uuid4

import orjson
import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import HealthCheck, given, settings

from archive_jobs.noop import NoopHandler
from consumers.item_reader import ItemReader
from events import limits
from events.codec import EventDecodeError, decode, encode
from events.limits import MAX_JSON_DEPTH, texts_are_clean, value_problem
from events.models import ItemSubmitted, ItemSucceeded, JobSubmitted
from projections.projector import Projector
from projections.settings import ProjectorSettings
from tests.support.hostile import json_values, nested, past_the_limits
from tests.unit.test_item_reader import _reference, _verdict


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_value_problem_is_the_limits_written_plainly(value):
    assert (value_problem(value) is not None) == past_the_limits(value)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"device_id": "\x00"}, "device_id"),
        ({"a": {"b": [1, "x\x1b"]}}, "a.b[1]"),
        ({"a": 2**63}, "a"),
        ({"a": -(2**63) - 1}, "a"),
        ({"a": [float("nan")]}, "a[0]"),
        ({"bad key\x07": 1}, "['bad key\\x07']"),
    ],
)
def test_a_problem_says_where_it_is(value, where):
    found = value_problem(value)
    assert found is not None and found.path == where


def test_the_depth_limit_is_the_objects_own_nesting():
    assert value_problem(nested(MAX_JSON_DEPTH)) is None
    assert value_problem(nested(MAX_JSON_DEPTH + 1)) is not None
    assert value_problem([[[]]]) is None
    assert value_problem(2**63 - 1) is None and value_problem(-(2**63)) is None


@settings(max_examples=500)
@given(json_values)
def test_text_without_a_backslash_holds_no_forbidden_character(value):
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        try:
            data = text.encode()
        except UnicodeEncodeError:
            continue  # a lone surrogate is not UTF-8: no JSON parser takes it
        if texts_are_clean(data):
            assert (value_problem(value, texts=False) is None) == (value_problem(value) is None)


def _event_with(input_value: Any) -> bytes:
    """An ItemSubmitted for the noop job type with ``input_value`` in its input, written by
    the standard library (which writes integers of any size, and NaN as NaN)."""
    event = orjson.loads(
        encode(ItemSubmitted.new(job_id=uuid4(), item_index=1, job_type="noop", input={"n": 1}))
    )
    event["input"] = {"n": 1, "x": input_value}
    return json.dumps(event).encode()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_the_worker_reads_hostile_inputs_as_the_codec_does(value):
    data = _event_with(value)
    reference = _reference(data)
    assert _verdict(lambda: ItemReader(NoopHandler()).read(data)) == reference
    if past_the_limits(json.loads(json.dumps(value))):  # (a surrogate pair is a character)
        assert reference[0] == "dead letter"


@pytest.mark.parametrize(
    "value",
    [
        "\x00",
        "a\x1fb",
        2**63,
        -(2**63) - 1,
        10**400,
        float("nan"),
        float("inf"),
        nested(MAX_JSON_DEPTH),
        nested(300),
    ],
    ids=repr,
)
def test_each_kind_of_hostile_input_is_a_dead_letter(value):
    data = _event_with(value)
    assert _verdict(lambda: ItemReader(NoopHandler()).read(data))[0] == "dead letter"
    with pytest.raises(EventDecodeError):
        decode(data)


def test_lone_surrogates_and_non_finite_literals_are_not_json():
    for literal in (b'"\\ud800"', b"NaN", b"-Infinity", b"1e999"):
        data = _event_with(0).replace(b'"x": 0', b'"x": ' + literal)
        with pytest.raises(EventDecodeError):
            decode(data)
        assert _verdict(lambda d=data: ItemReader(NoopHandler()).read(d))[0] == "dead letter"


def test_escaped_text_within_the_limits_is_read_the_long_way_and_kept():
    data = _event_with('tab\there, quote " and é')
    assert b"\\" in data
    assert _verdict(lambda: ItemReader(NoopHandler()).read(data)) == _reference(data)
    assert decode(data).input["x"] == 'tab\there, quote " and é'  # type: ignore[union-attr]


SETTINGS = ProjectorSettings()


def _projector_fold(topic: str, value: bytes) -> Any:
    record = ConsumerRecord(topic, 0, 5, 0, 0, b"k", value, None, 0, 0, ())
    projector = Projector(SETTINGS, None, None)  # type: ignore[arg-type]
    return projector.fold({TopicPartition(topic, 0): [record]})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_the_projector_folds_no_hostile_value(value):
    job = uuid4()
    submitted = orjson.loads(
        encode(ItemSubmitted.new(job_id=job, item_index=1, job_type="query", input={"a": 1}))
    )
    submitted["input"] = {"x": value}
    succeeded = orjson.loads(encode(ItemSucceeded.new(job_id=job, item_index=1, output={})))
    succeeded["output"] = {"x": value}
    value = json.loads(json.dumps(value))  # as JSON has it (a surrogate pair: a character)
    submitted["input"], succeeded["output"] = {"x": value}, {"x": value}
    hostile = past_the_limits(value)
    items = _projector_fold(SETTINGS.topics.items("query"), json.dumps(submitted).encode())
    outcome = _projector_fold(SETTINGS.topics.outcomes, json.dumps(succeeded).encode())
    if hostile:  # passed over (its worker dead-letters a submission; its worker's real
        assert not items.items and not outcome.items  # outcome is folded later)
    else:
        assert [i.input_data for i in items.items.values()] == [submitted["input"]]
        (item,) = outcome.items.values()
        assert (item.status, item.output_data) == ("success", succeeded["output"])


@pytest.mark.parametrize("field", ["user_id", "metadata"])
def test_a_job_submitted_with_a_nul_is_refused(field):
    event = orjson.loads(
        encode(JobSubmitted.new(job_id=uuid4(), job_type="query", user_id="u", total_items=1))
    )
    event[field] = "u\x00" if field == "user_id" else {"k": "\x00"}
    with pytest.raises(EventDecodeError) as refused:
        decode(orjson.dumps(event))
    assert refused.value.reason == "schema_violation" and field in refused.value.message


def test_safe_text_replaces_what_a_message_may_not_carry():
    assert limits.safe_text("a\x00b\x1b[31m\ud800\tc") == "a\ufffdb\ufffd[31m\ufffd\tc"
