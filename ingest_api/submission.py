"""Turning an accepted batch into events: one JobSubmitted, then one ItemSubmitted per item,
each item keyed by its handler's routing key."""

from collections.abc import Iterator
from typing import Any
from uuid import UUID

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
    for index, item in enumerate(items):
        try:
            valid.append(handler.input_model.model_validate(item))
        except ValidationError as exc:
            note_invalid(errors, index, exc)
    if errors:
        raise InvalidBatch(
            f"{len(items) - len(valid)} of {len(items)} items are invalid", invalid_items=errors
        )
    return valid


def item_message(
    topic: str, job_type: str, job_id: str, index: int, payload: dict[str, Any] | bytes, key: str
) -> Outgoing:
    """``payload``: the validated input, as a dict or as its JSON. The topic and the job id's
    text are the caller's, worked out once per batch (this runs per item)."""
    return Outgoing(topic, key, value=item_wire.submitted(job_id, index, job_type, payload))


def model_chunks(
    topics: Topics,
    handler: Handler,
    job_id: UUID,  # type: ignore[type-arg]
    items: list[Any],
    size: int = CHUNK,
) -> Iterator[list[Outgoing]]:
    """The ItemSubmitted messages of validated items, a chunk at a time."""
    topic, job = topics.items(handler.job_type), job_id_text(job_id)
    for start in range(0, len(items), size):
        yield [
            item_message(
                topic,
                handler.job_type,
                job,
                index,
                item.model_dump(mode="json", exclude_none=True),
                handler.routing_key(item, job_id=job_id, item_index=index),
            )
            for index, item in enumerate(items[start : start + size], start)
        ]


def retry_item(
    handler: Handler,
    topics: Topics,
    job_id: UUID,  # type: ignore[type-arg]
    index: int,
    data: dict[str, Any] | None,
) -> Outgoing:
    """An ItemSubmitted of a retry job. An input that no longer validates keeps its raw form
    (and fails again, for the same reason) under the default routing key."""
    try:
        item = handler.input_model.model_validate(data or {})
    except ValidationError:
        payload, key = data or {}, f"{job_id}:{index}"
    else:
        payload = item.model_dump(mode="json", exclude_none=True)
        key = handler.routing_key(item, job_id=job_id, item_index=index)
    topic = topics.items(handler.job_type)
    return item_message(topic, handler.job_type, job_id_text(job_id), index, payload, key)
