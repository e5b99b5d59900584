"""Outcome events straight to wire bytes, for the workers' hot path.

Building a pydantic model per outcome costs more than everything else a no-op item needs,
and so does a dict per outcome for orjson. These functions fill a template per event type
with what ``encode(ItemSucceeded(...))`` would write: the same fields in the same order, each
value written by orjson as the model's serializer writes it, from values the worker has
already validated. ``tests/unit/test_outcome_wire.py`` holds them to the models byte for
byte. The job id is its canonical text (``str(job_id)``), as the worker has it.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from events.ids import ITEM_IDS, item_outcome_name
from events.models import MAX_DURATION_MS

_OPTIONS = orjson.OPT_UTC_Z
_dumps = orjson.dumps


def outcome_id(job_id: str, item_index: int) -> str:
    """``str(events.ids.item_outcome_id(job_id, item_index))``."""
    return _outcome_id(job_id, item_index).decode()


def _outcome_id(job_id: str, item_index: int) -> bytes:
    return ITEM_IDS.ascii_text(job_id, item_outcome_name(item_index))


def _template(event_type: str, tail: bytes) -> bytes:
    head = (
        b'{"event_id":"%%s","event_type":"%s","schema_version":1,"occurred_at":%%s,'
        b'"job_id":"%%s","item_index":%%d,"attempts":%%d,"duration_ms":%%s'
    ) % event_type.encode()
    return head + tail + b"}"


_SUCCEEDED = _template("ItemSucceeded", b',"output":%s')
_FAILED = _template("ItemFailed", b',"error_code":%s,"error_message":%s')
_CANCELLED = _template("ItemCancelled", b"")


def _head(job_id: str, item_index: int, attempts: int, duration_ms: float) -> tuple[Any, ...]:
    if not duration_ms <= MAX_DURATION_MS:  # the contract's bound
        duration_ms = MAX_DURATION_MS
    return (
        _outcome_id(job_id, item_index),
        _now_json(),
        job_id.encode(),
        item_index,
        attempts,
        _dumps(float(duration_ms)),
    )


class _UtcSecond:
    """The current second as orjson writes a UTC datetime (``"2026-11-30T07:49:57``),
    remembered until the clock leaves it: a timestamp per outcome then costs a clock read
    and a format instead of a ``datetime`` and its serialization."""

    second = -1
    text = b""


_clock: Callable[[], int] = time.time_ns  # nanoseconds since the epoch


def _now_json() -> bytes:
    """``orjson.dumps(datetime.now(UTC), option=OPT_UTC_Z)``, to the microsecond."""
    second, micros = divmod(_clock() // 1000, 1_000_000)
    if second != _UtcSecond.second:
        whole = datetime.fromtimestamp(second, UTC)
        _UtcSecond.text, _UtcSecond.second = _dumps(whole, option=_OPTIONS)[:-2], second
    if micros:  # orjson leaves out a zero fraction
        return b'%s.%06dZ"' % (_UtcSecond.text, micros)
    return _UtcSecond.text + b'Z"'


def succeeded(
    job_id: str,
    item_index: int,
    *,
    attempts: int,
    duration_ms: float,
    output: dict[str, Any] | bytes,
) -> bytes:
    """``output``: the output object, or its JSON as pydantic writes it (bytes)."""
    if type(output) is not bytes:
        output = _dumps(output, option=_OPTIONS)
    return _SUCCEEDED % (*_head(job_id, item_index, attempts, duration_ms), output)


def failed(
    job_id: str,
    item_index: int,
    *,
    attempts: int,
    duration_ms: float,
    error_code: str,
    error_message: str,
) -> bytes:
    return _FAILED % (
        *_head(job_id, item_index, attempts, duration_ms),
        _dumps(error_code),
        _dumps(error_message),
    )


def cancelled(job_id: str, item_index: int) -> bytes:
    return _CANCELLED % _head(job_id, item_index, 0, 0.0)
