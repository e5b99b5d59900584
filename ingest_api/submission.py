"""Turning an accepted batch into events: one JobSubmitted, then one ItemSubmitted per item,
each item keyed by its handler's routing key."""

from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from consumers.handlers.base import Handler
from consumers.processing import validation_message
from consumers.registry import UnknownJobType, handler_class
from events import item_wire
from events.ids import job_id_text
from events.topics import Topics
from ingest_api.errors import InvalidBatch, TooLarge
from ingest_api.publisher import Outgoing

MAX_REPORTED_ERRORS = 20
CHUNK = 5_000  # items published per round trip


def handler_for(job_type: str) -> Handler:  # type: ignore[type-arg]
    try:
        return handler_class(job_type)()
    except UnknownJobType as exc:
        raise InvalidBatch(str(exc), known_job_types=exc.known) from None


def note_invalid(errors: list[dict[str, Any]], index: int, exc: ValidationError) -> None:
    """Keep the first invalid items, by index with their messages, for the 422."""
    if len(errors) < MAX_REPORTED_ERRORS:
        errors.append({"item_index": index, "message": validation_message(exc)})


def validate_items(
    handler: Handler,
    items: list[dict[str, Any]],  # type: ignore[type-arg]
    max_items: int,
) -> list[Any]:
    """Validate every item against the job type's input model; name the first bad ones."""
    if len(items) > max_items:
        raise TooLarge(f"{len(items)} items exceed the limit of {max_items} per request")
    valid: list[Any] = []
    errors: list[dict[str, Any]] = []
    validate = handler.input_model.__pydantic_validator__.validate_python  # = model_validate
    for index, item in enumerate(items):
        try:
            valid.append(validate(item))
        except ValidationError as exc:
            note_invalid(errors, index, exc)
    if errors:
        raise InvalidBatch(
            f"{len(items) - len(valid)} of {len(items)} items are invalid", invalid_items=errors
        )
    return valid


Spooled = tuple[bytes, str]  # an item's validated input as JSON, and its routing key


def spooled_chunks(
    handler: Handler,  # type: ignore[type-arg]
    job_id: UUID,
    items: list[Any],
    size: int = CHUNK,
) -> Iterator[list[Spooled]]:
    """Validated items as (input JSON, routing key), in order, a chunk at a time."""
    to_json, routing_key = handler.input_model.__pydantic_serializer__.to_json, handler.routing_key
    for start in range(0, len(items), size):
        yield [
            (to_json(item, exclude_none=True), routing_key(item, job_id=job_id, item_index=index))
            for index, item in enumerate(items[start : start + size], start)
        ]


def item_messages(
    topic: str, encoder: item_wire.SubmittedEncoder, start: int, items: Iterable[Spooled]
) -> list[Outgoing]:
    """The ItemSubmitted messages of items numbered from ``start`` (this runs per item)."""
    encode = encoder.encode
    return [
        Outgoing(topic, key, None, encode(index, payload))
        for index, (payload, key) in enumerate(items, start)
    ]


def message_chunks(
    topics: Topics,
    handler: Handler,  # type: ignore[type-arg]
    job_id: UUID,
    chunks: Iterable[list[Spooled]],
) -> Iterator[list[Outgoing]]:
    """The ItemSubmitted messages of a job's items, chunk by chunk, numbered from 0; the
    topic and the job's part of every event are worked out once per chunk."""
    topic, job = topics.items(handler.job_type), job_id_text(job_id)
    start = 0
    for chunk in chunks:
        encoder = item_wire.SubmittedEncoder(job, handler.job_type)
        yield item_messages(topic, encoder, start, chunk)
        start += len(chunk)


def retry_item(
    handler: Handler,  # type: ignore[type-arg]
    job_id: UUID,
    index: int,
    data: dict[str, Any] | None,
) -> Spooled:
    """An item of a retry job. An input that no longer validates keeps its raw form (and
    fails again, for the same reason) under the default routing key."""
    try:
        item = handler.input_model.model_validate(data or {})
    except ValidationError:
        return orjson.dumps(data or {}), f"{job_id}:{index}"
    payload = handler.input_model.__pydantic_serializer__.to_json(item, exclude_none=True)
    return payload, handler.routing_key(item, job_id=job_id, item_index=index)
