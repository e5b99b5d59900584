"""``ItemSubmitted`` events straight to wire bytes, for the API's hot path (one per item of
a batch): the JSON ``encode(ItemSubmitted.new(...))`` would write, from an input the job
type's model has already validated, in a microsecond or two instead of twenty.
``tests/unit/test_item_wire.py`` holds it to the model, byte for byte."""

from datetime import UTC, datetime
from typing import Any

import orjson

from events.outcome_wire import item_event_id

_OPTIONS = orjson.OPT_UTC_Z


class SubmittedEncoder:
    """The ``ItemSubmitted`` events of one job's items published together (a chunk): what
    they share — job, job type, time — is written once; per item only its event id, index
    and input. The bytes are those ``orjson`` writes for the event's fields in order."""

    def __init__(self, job_id: str, job_type: str, occurred_at: datetime | None = None):
        occurred = orjson.dumps(occurred_at or datetime.now(UTC), option=_OPTIONS)
        self._job_id = job_id
        self._after_id = (
            b'","event_type":"ItemSubmitted","schema_version":1,"occurred_at":'
            + occurred
            + b',"job_id":'
            + orjson.dumps(job_id)
            + b',"job_type":'
            + orjson.dumps(job_type)
            + b',"item_index":'
        )

    def encode(self, item_index: int, input_json: bytes) -> bytes:
        """``input_json``: the validated input as compact JSON, spliced in unchanged."""
        event_id = item_event_id(self._job_id, item_index, "submitted").encode()
        return b'{"event_id":"%s%s%d,"input":%s}' % (
            event_id,
            self._after_id,
            item_index,
            input_json,
        )


def submitted(
    job_id: str, item_index: int, job_type: str, payload: dict[str, Any] | bytes
) -> bytes:
    """One event. ``payload``: the validated input, as a dict or already as JSON bytes."""
    input_json = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return SubmittedEncoder(job_id, job_type).encode(item_index, input_json)
