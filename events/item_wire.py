"""``ItemSubmitted`` events straight to wire bytes, for the API's hot path (one per item of
a batch): the JSON ``encode(ItemSubmitted.new(...))`` would write, from an input the job
type's model has already validated, in a microsecond or two instead of twenty.
``tests/unit/test_item_wire.py`` holds it to the model, byte for byte."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from events.ids import ITEM_IDS, item_submitted_name

_OPTIONS = orjson.OPT_UTC_Z


class SubmittedEncoder:
    """The ``ItemSubmitted`` events of one job's items published together (a chunk): what
    they share — job, job type, time — is written once; per item only its event id, index
    and input. The bytes are those ``orjson`` writes for the event's fields in order."""

    def __init__(self, job_id: str, job_type: str, occurred_at: datetime | None = None):
        occurred = orjson.dumps(occurred_at or datetime.now(UTC), option=_OPTIONS)
        self.job_id = job_id
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
        return self.encode_all(item_index, [input_json])[0]

    def encode_all(self, start: int, inputs: Sequence[bytes]) -> list[bytes]:
        """The events of consecutive items numbered from ``start``, from their inputs."""
        indexes = range(start, start + len(inputs))
        event_ids = ITEM_IDS.ascii_texts(self.job_id, [item_submitted_name(i) for i in indexes])
        after_id = self._after_id
        return [
            b'{"event_id":"%s%s%d,"input":%s}' % (event_id, after_id, index, input_json)
            for event_id, index, input_json in zip(event_ids, indexes, inputs, strict=True)
        ]


def submitted(
    job_id: str, item_index: int, job_type: str, payload: dict[str, Any] | bytes
) -> bytes:
    """One event. ``payload``: the validated input, as a dict or already as JSON bytes."""
    input_json = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return SubmittedEncoder(job_id, job_type).encode(item_index, input_json)
