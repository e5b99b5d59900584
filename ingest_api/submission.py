"""Turning an accepted batch into events: one JobSubmitted, then one ItemSubmitted per item,
each item keyed by its handler's routing key."""

from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from consumers.handlers.base import Handler, default_routing_keys
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


# A chunk of validated items: their inputs as JSON, and their routing keys, or None for the
# default keys (which follow from the job and the index: ``default_routing_keys``).
SpooledChunk = tuple[list[bytes], list[str] | None]


def spooled_chunk(
    handler: Handler,  # type: ignore[type-arg]
    job_id: UUID,
    start: int,
    items: Sequence[Any],
) -> SpooledChunk:
    """Validated items numbered from ``start`` as a spooled chunk."""
    to_json = handler.input_model.__pydantic_serializer__.to_json
    payloads = [to_json(item, exclude_none=True) for item in items]
    if not handler.keys_by_item():
        return payloads, None
    return payloads, handler.routing_keys(items, job_id=job_id, start=start)


def spooled_chunks(
    handler: Handler,  # type: ignore[type-arg]
    job_id: UUID,
    items: list[Any],
    size: int = CHUNK,
) -> Iterator[SpooledChunk]:
    for start in range(0, len(items), size):
        yield spooled_chunk(handler, job_id, start, items[start : start + size])


def item_messages(
    topic: str, encoder: item_wire.SubmittedEncoder, start: int, chunk: SpooledChunk
) -> list[Outgoing]:
    """The ItemSubmitted messages of a chunk of items numbered from ``start``."""
    payloads, keys = chunk
    if keys is None:
        keys = default_routing_keys(encoder.job_id, start, len(payloads))
    values = encoder.encode_all(start, payloads)
    return [Outgoing(topic, key, None, value) for key, value in zip(keys, values, strict=True)]


def message_chunks(
    topics: Topics,
    handler: Handler,  # type: ignore[type-arg]
    job_id: UUID,
    chunks: Iterable[SpooledChunk],
) -> Iterator[list[Outgoing]]:
    """The ItemSubmitted messages of a job's items, chunk by chunk, numbered from 0; the
    topic and the job's part of every event are worked out once per chunk."""
    topic, job = topics.items(handler.job_type), job_id_text(job_id)
    start = 0
    for chunk in chunks:
        encoder = item_wire.SubmittedEncoder(job, handler.job_type)
        yield item_messages(topic, encoder, start, chunk)
        start += len(chunk[0])


def retry_chunk(
    handler: Handler,  # type: ignore[type-arg]
    job_id: UUID,
    start: int,
    inputs: list[dict[str, Any] | None],
) -> SpooledChunk:
    """Items of a retry job. An input that no longer validates keeps its raw form (and
    fails again, for the same reason) under the default routing key."""
    to_json = handler.input_model.__pydantic_serializer__.to_json
    payloads, keys = [], []
    for index, data in enumerate(inputs, start):
        try:
            item = handler.input_model.model_validate(data or {})
        except ValidationError:
            payloads.append(orjson.dumps(data or {}))
            keys.append(f"{job_id}:{index}")
        else:
            payloads.append(to_json(item, exclude_none=True))
            keys.append(handler.routing_key(item, job_id=job_id, item_index=index))
    return payloads, keys
