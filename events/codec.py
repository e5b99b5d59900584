"""The one codec: ``encode(event) -> bytes`` and ``decode(bytes) -> event``.

JSON on the wire (orjson). Old schema versions are upcast before validation; an unknown
version, undecodable bytes, a schema violation (a value past ``events.limits`` included) or
an oversized event raise ``EventDecodeError`` with a short machine-readable ``reason``.

The text is parsed as the hot paths' pydantic readers parse it (jiter), integers exactly,
except that NaN and Infinity are not JSON here: the fast readers and this decoder then give
the same verdict on every event.
"""

import json
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError
from pydantic_core import from_json

from events.models import EVENT_CLASSES, NOTIFICATION_CLASSES, AnyEvent, Event, JobFinished

MAX_EVENT_BYTES = 1_000_000

E = TypeVar("E", bound=Event)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (event_type, from_version) -> function returning the payload at from_version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


class EventDecodeError(Exception):
    """Raised for any event that cannot be turned into a valid contract object."""

    def __init__(self, reason: str, message: str, payload: dict[str, Any] | None = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.payload = payload  # the parsed JSON object, when it got that far


def encode(event: Event) -> bytes:
    return event.__pydantic_serializer__.to_json(event)


def decode(data: bytes | None, *, max_bytes: int = MAX_EVENT_BYTES) -> AnyEvent:
    if data is None:
        raise EventDecodeError("empty", "the message has no value")
    if len(data) > max_bytes:
        raise EventDecodeError(
            "oversized", f"{len(data)} bytes exceeds the limit of {max_bytes}", address_fields(data)
        )
    try:
        payload = from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        raise EventDecodeError("invalid_json", str(exc), address_fields(data)) from None
    if not isinstance(payload, dict):
        raise EventDecodeError("not_an_object", "an event must be a JSON object")
    return decode_object(payload)


def decode_notification(data: bytes | None, *, max_bytes: int = MAX_EVENT_BYTES) -> JobFinished:
    """A notifications topic's event (``JobFinished``), as ``decode`` reads the others."""
    if data is None:
        raise EventDecodeError("empty", "the message has no value")
    if len(data) > max_bytes:
        raise EventDecodeError("oversized", f"{len(data)} bytes exceeds the limit of {max_bytes}")
    try:
        payload = from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        raise EventDecodeError("invalid_json", str(exc)) from None
    if not isinstance(payload, dict):
        raise EventDecodeError("not_an_object", "an event must be a JSON object")
    event = decode_object(payload, NOTIFICATION_CLASSES)
    assert isinstance(event, JobFinished)
    return event


def address_fields(data: bytes) -> dict[str, Any] | None:
    """The job id and item index of an event refused before it could be read (too big, or
    not JSON by the contract: NaN, a lone surrogate, nesting past the parser's limit), so
    that its item can be failed: read as leniently as there are parsers."""
    for lenient in (_lenient_jiter, orjson.loads, json.loads):
        try:
            payload = lenient(data)
        except (ValueError, RecursionError):
            continue
        if not isinstance(payload, dict):
            return None
        return {"job_id": payload.get("job_id"), "item_index": payload.get("item_index")}
    return None


def _lenient_jiter(data: bytes) -> Any:
    return from_json(data, allow_inf_nan=True)


def decode_object(
    payload: dict[str, Any], classes: dict[str, type[Event]] = EVENT_CLASSES
) -> AnyEvent:
    """``classes``: the event types the topic it came from carries."""
    event_type = payload.get("event_type")
    cls = classes.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        raise EventDecodeError("unknown_event_type", f"unknown event_type {event_type!r}", payload)
    payload = _upcast(cls, payload)
    try:
        return cls.__pydantic_validator__.validate_python(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        raise EventDecodeError("schema_violation", f"{where}: {first['msg']}", payload) from None


_VERSIONS: dict[type[Event], int] = {}


def _current_version(cls: type[Event]) -> int:
    version = _VERSIONS.get(cls)
    if version is None:
        version = _VERSIONS[cls] = cls.model_fields["schema_version"].default
    return version


def _upcast(cls: type[Event], payload: dict[str, Any]) -> dict[str, Any]:
    event_type = cls.model_fields["event_type"].default
    version = payload.get("schema_version")
    current = _current_version(cls)
    if version == current and type(version) is int:
        return payload  # the common case, kept cheap
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise EventDecodeError(
            "schema_violation", "schema_version must be a positive integer", payload
        )
    if version > current:
        raise EventDecodeError(
            "unknown_schema_version",
            f"{event_type} schema_version {version} is newer than {current}",
            payload,
        )
    while version < current:
        upcast = UPCASTERS.get((event_type, version))
        if upcast is None:
            raise EventDecodeError(
                "unknown_schema_version", f"no upcaster for {event_type} v{version}", payload
            )
        payload = upcast(payload)
        version += 1
        payload["schema_version"] = version
    return payload
