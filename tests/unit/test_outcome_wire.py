"""The workers' hot-path encoding must say exactly what the pydantic contracts say."""

from uuid import uuid4

import orjson
import pytest

from events import ids, outcome_wire
from events.codec import decode, encode
from events.models import ItemCancelled, ItemFailed, ItemSucceeded


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
    event = decode(raw(job))
    assert type(event) is model
    assert event.job_id == job and event.item_index == 4
    assert event.event_id == ids.item_outcome_id(job, 4)
    assert event.occurred_at.utcoffset().total_seconds() == 0
    for name, value in fields.items():
        assert getattr(event, name) == value
    # the same bytes as the model's own encoding, field for field
    assert orjson.loads(raw(job)).keys() == orjson.loads(encode(event)).keys()
