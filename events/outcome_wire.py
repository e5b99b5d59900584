"""Outcome events straight to wire bytes, for the workers' hot path.

Building a pydantic model per outcome costs more than everything else a no-op item needs.
These functions write the JSON that ``encode(ItemSucceeded(...))`` would write, from values
the worker has already validated; ``tests/unit/test_outcome_wire.py`` holds them to the
models (every field, decoded back through the one codec).
"""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from events.ids import ITEM_IDS, job_id_text

_OPTIONS = orjson.OPT_UTC_Z


def item_event_id(job_id: str, item_index: int, kind: str) -> str:
    """``str(events.ids.uuid5(NAMESPACE, f"{job_id}/{item_index}/{kind}"))``."""
    return ITEM_IDS.text(job_id, f"{item_index}/{kind}")


def outcome_id(job_id: str, item_index: int) -> str:
    """``str(events.ids.item_outcome_id(job_id, item_index))``."""
    return item_event_id(job_id, item_index, "outcome")


def _envelope(
    event_type: str, job_id: UUID, item_index: int, attempts: int, duration_ms: float
) -> dict[str, Any]:
    job = job_id_text(job_id)
    return {
        "event_id": outcome_id(job, item_index),
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": datetime.now(UTC),
        "job_id": job,
        "item_index": item_index,
        "attempts": attempts,
        "duration_ms": duration_ms,
    }


def succeeded(
    job_id: UUID, item_index: int, *, attempts: int, duration_ms: float, output: dict[str, Any]
) -> bytes:
    event = _envelope("ItemSucceeded", job_id, item_index, attempts, duration_ms)
    event["output"] = output
    return orjson.dumps(event, option=_OPTIONS)


def failed(
    job_id: UUID,
    item_index: int,
    *,
    attempts: int,
    duration_ms: float,
    error_code: str,
    error_message: str,
) -> bytes:
    event = _envelope("ItemFailed", job_id, item_index, attempts, duration_ms)
    event["error_code"] = error_code
    event["error_message"] = error_message
    return orjson.dumps(event, option=_OPTIONS)


def cancelled(job_id: UUID, item_index: int) -> bytes:
    return orjson.dumps(_envelope("ItemCancelled", job_id, item_index, 0, 0.0), option=_OPTIONS)
