"""``ItemSubmitted`` events straight to wire bytes, for the API's hot path (one per item of
a batch): the JSON ``encode(ItemSubmitted.new(...))`` would write, from an input the job
type's model has already validated, in a few microseconds instead of twenty.
``tests/unit/test_item_wire.py`` holds it to the model."""

from datetime import UTC, datetime
from typing import Any

import orjson

from events.outcome_wire import item_event_id

_OPTIONS = orjson.OPT_UTC_Z


def submitted(
    job_id: str, item_index: int, job_type: str, payload: dict[str, Any] | bytes
) -> bytes:
    """``payload``: the validated input, as a dict or already as JSON bytes (spliced in)."""
    return orjson.dumps(
        {
            "event_id": item_event_id(job_id, item_index, "submitted"),
            "event_type": "ItemSubmitted",
            "schema_version": 1,
            "occurred_at": datetime.now(UTC),
            "job_id": job_id,
            "job_type": job_type,
            "item_index": item_index,
            "input": orjson.Fragment(payload) if isinstance(payload, bytes) else payload,
        },
        option=_OPTIONS,
    )
