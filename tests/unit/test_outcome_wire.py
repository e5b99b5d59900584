"""The workers' hot-path encoding must say exactly what the pydantic contracts say."""

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from events import ids, outcome_wire
from events.codec import decode, encode
from events.limits import FORBIDDEN_CONTROLS
from events.models import (
    MAX_DURATION_MS,
    MAX_ITEMS,
    ItemCancelled,
    ItemFailed,
    ItemSucceeded,
)


@pytest.mark.parametrize("index", [0, 1, 7, 12345, 2**31 - 1])
def test_outcome_id_is_the_deterministic_uuid5(index):
    job = uuid4()
    assert outcome_wire.outcome_id(str(job), index) == str(ids.item_outcome_id(job, index))


def test_many_ids_agree_with_the_standard_library():
    import uuid

    for _ in range(500):
        job = uuid4()
        expected = uuid.uuid5(ids.NAMESPACE, f"{job}/3/outcome")
        assert outcome_wire.outcome_id(str(job), 3) == str(expected)


@pytest.mark.parametrize(
    ("raw", "model", "fields"),
    [
        (
            lambda j: outcome_wire.succeeded(
                j, 4, attempts=2, duration_ms=1.5, output={"k": [1, "two"], "n": None}
            ),
            ItemSucceeded,
            {"attempts": 2, "duration_ms": 1.5, "output": {"k": [1, "two"], "n": None}},
        ),
        (
            lambda j: outcome_wire.failed(
                j, 4, attempts=3, duration_ms=0.0, error_code="boom", error_message="it broke"
            ),
            ItemFailed,
            {"attempts": 3, "error_code": "boom", "error_message": "it broke"},
        ),
        (lambda j: outcome_wire.cancelled(j, 4), ItemCancelled, {"attempts": 0, "duration_ms": 0}),
    ],
)
def test_fast_encoding_decodes_to_the_model(raw, model, fields):
    job = uuid4()
    wire = raw(str(job))
    event = decode(wire)
    assert type(event) is model
    assert event.job_id == job and event.item_index == 4
    assert event.event_id == ids.item_outcome_id(job, 4)
    assert event.occurred_at.utcoffset().total_seconds() == 0
    for name, value in fields.items():
        assert getattr(event, name) == value
    assert wire == encode(event)  # the model's own encoding, byte for byte


# texts within the contract (``events.limits``): what the worker writes
SAFE_CHARACTERS = st.characters(exclude_characters=FORBIDDEN_CONTROLS, exclude_categories=["Cs"])


@settings(max_examples=300)
@given(
    duration=st.floats(min_value=0, allow_infinity=False, allow_nan=False),
    attempts=st.integers(min_value=0, max_value=MAX_ITEMS),
    index=st.integers(min_value=0, max_value=MAX_ITEMS - 1),
    message=st.text(SAFE_CHARACTERS, max_size=50),
    output=st.dictionaries(
        st.text(SAFE_CHARACTERS, max_size=5),
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.text(SAFE_CHARACTERS, max_size=8),
        max_size=4,
    ),
)
def test_any_outcome_is_written_as_the_model_writes_it(duration, attempts, index, message, output):
    job = str(uuid4())
    for wire in (
        outcome_wire.succeeded(job, index, attempts=attempts, duration_ms=duration, output=output),
        outcome_wire.failed(
            job,
            index,
            attempts=attempts,
            duration_ms=duration,
            error_code="e",
            error_message=message,
        ),
        outcome_wire.cancelled(job, index),
    ):
        assert encode(decode(wire)) == wire


@pytest.mark.parametrize("microsecond", [0, 1, 999_999])
def test_the_time_is_written_as_the_model_writes_it(monkeypatch, microsecond):
    moment = datetime(2026, 11, 29, 0, 7, 14, microsecond, tzinfo=UTC)
    nanos = (int(moment.timestamp()) * 10**6 + microsecond) * 1000 + 999
    monkeypatch.setattr(outcome_wire, "_clock", lambda: nanos)
    wire = outcome_wire.cancelled(str(uuid4()), 1)
    assert decode(wire).occurred_at == moment
    assert encode(decode(wire)) == wire


def test_a_duration_past_the_contracts_bound_is_written_as_the_bound():
    wire = outcome_wire.succeeded(str(uuid4()), 0, attempts=1, duration_ms=1e300, output={})
    assert decode(wire).duration_ms == MAX_DURATION_MS


def test_an_output_written_by_its_model_is_sent_as_written():
    class Output(BaseModel):
        at: datetime
        ratio: float
        name: str

    output = Output(at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), ratio=1e-7, name="é\n")
    written = output.__pydantic_serializer__.to_json(output)
    wire = outcome_wire.succeeded(str(uuid4()), 2, attempts=1, duration_ms=1.0, output=written)
    event = decode(wire)
    assert event.output == output.model_dump(mode="json")
    assert encode(event) == wire


# texts within the contract (``events.limits``): what the worker writes
SAFE_CHARACTERS = st.characters(exclude_characters=FORBIDDEN_CONTROLS, exclude_categories=["Cs"])


@settings(max_examples=300)
@given(now_ns=st.integers(min_value=0, max_value=253402300799 * 10**9))  # to 9999-12-31
def test_the_remembered_second_writes_any_time_as_orjson_does(now_ns):
    import orjson

    micros = now_ns // 1000
    expected = datetime.fromtimestamp(micros // 10**6, UTC).replace(microsecond=micros % 10**6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outcome_wire, "_clock", lambda: now_ns)
        assert outcome_wire._now_json() == orjson.dumps(expected, option=orjson.OPT_UTC_Z)


def test_the_remembered_second_moves_with_the_clock(monkeypatch):
    second = 1_700_000_000 * 10**9
    for nanos, written in [
        (second + 5_000, b'"2023-11-14T22:13:20.000005Z"'),
        (second, b'"2023-11-14T22:13:20Z"'),
        (second + 10**9, b'"2023-11-14T22:13:21Z"'),
        (second - 1, b'"2023-11-14T22:13:19.999999Z"'),
    ]:
        monkeypatch.setattr(outcome_wire, "_clock", lambda nanos=nanos: nanos)
        assert outcome_wire._now_json() == written
