"""The API's hot-path encoding of ItemSubmitted must say exactly what the contract says."""

from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson
import pytest

from events import ids, item_wire
from events.codec import decode, encode
from events.models import ItemSubmitted


@pytest.mark.parametrize("index", [0, 1, 9, 123_456])
def test_fast_encoding_is_the_model_encoding(index):
    job = uuid4()
    payload = {"content_hash": "a" * 64, "nested": {"x": [1, None, "é"]}}
    raw = item_wire.submitted(str(job), index, "query", payload)
    event = decode(raw)
    assert isinstance(event, ItemSubmitted)
    assert event.event_id == ids.item_submitted_id(job, index)
    assert (event.job_id, event.item_index, event.job_type, event.input) == (
        job,
        index,
        "query",
        payload,
    )
    assert abs((datetime.now(UTC) - event.occurred_at).total_seconds()) < 5
    # byte for byte what the model writes, but for the timestamp
    model = orjson.loads(encode(event))
    assert orjson.loads(raw) == model


def test_an_input_given_as_json_bytes_is_spliced_in_unchanged():
    job = uuid4()
    payload = {"device_id": "d\t1", "label": "line\nbreak"}
    as_bytes = item_wire.submitted(str(job), 3, "enrollment", orjson.dumps(payload))
    as_dict = item_wire.submitted(str(job), 3, "enrollment", payload)
    assert orjson.loads(as_bytes)["input"] == payload
    assert decode(as_bytes).input == payload  # type: ignore[union-attr]
    assert as_bytes.split(b'"occurred_at"')[0] == as_dict.split(b'"occurred_at"')[0]


def test_a_chunk_encoder_writes_what_orjson_writes_for_the_event():
    job, at = str(uuid4()), datetime(2026, 11, 28, 21, 0, 5, 123456, tzinfo=UTC)
    encoder = item_wire.SubmittedEncoder(job, 'odd "type"\\', occurred_at=at)
    payloads = [{"content_hash": f"{n:064x}", "label": 'tab\tquote"'} for n in range(3)]
    for start in (0, 7, 4_999_999):
        expected = [
            orjson.dumps(
                {
                    "event_id": str(ids.item_submitted_id(UUID(job), index)),
                    "event_type": "ItemSubmitted",
                    "schema_version": 1,
                    "occurred_at": at,
                    "job_id": job,
                    "job_type": 'odd "type"\\',
                    "item_index": index,
                    "input": payload,
                },
                option=orjson.OPT_UTC_Z,
            )
            for index, payload in enumerate(payloads, start)
        ]
        assert encoder.encode_all(start, [orjson.dumps(p) for p in payloads]) == expected
        assert encoder.encode(start, orjson.dumps(payloads[0])) == expected[0]
