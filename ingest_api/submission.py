"""Turning an accepted batch into events: one JobSubmitted, then one ItemSubmitted per item,
each item keyed by its handler's routing key."""

from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from consumers.handlers.base import Handler
from consumers.processing import validation_message
from consumers.registry import UnknownJobType, handler_class
from events.models import ItemSubmitted, JobSubmitted
from events.topics import Topics
from ingest_api.errors import InvalidBatch, TooLarge
from ingest_api.publisher import Outgoing

MAX_REPORTED_ERRORS = 20


def handler_for(job_type: str) -> Handler:  # type: ignore[type-arg]
    try:
        return handler_class(job_type)()
    except UnknownJobType as exc:
        raise InvalidBatch(str(exc), known_job_types=exc.known) from None


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
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append({"item_index": index, "message": validation_message(exc)})
    if errors:
        raise InvalidBatch(
            f"{len(items) - len(valid)} of {len(items)} items are invalid", invalid_items=errors
        )
    return valid


def job_events(
    *,
    topics: Topics,
    handler: Handler,
    user_id: str,  # type: ignore[type-arg]
    items: list[Any],
    metadata: dict[str, Any] | None,
    job_id: UUID | None = None,
) -> tuple[UUID, list[Outgoing]]:
    job_id = job_id or uuid4()
    job_key = str(job_id)
    submitted = JobSubmitted.new(
        job_id=job_id,
        job_type=handler.job_type,
        user_id=user_id,
        total_items=len(items),
        metadata=metadata or {},
    )
    outgoing = [Outgoing(topics.jobs, job_key, submitted)]
    items_topic = topics.items(handler.job_type)
    for index, item in enumerate(items):
        event = ItemSubmitted.new(
            job_id=job_id,
            item_index=index,
            job_type=handler.job_type,
            input=item.model_dump(mode="json", exclude_none=True),
        )
        key = handler.routing_key(item, job_id=job_id, item_index=index)
        outgoing.append(Outgoing(items_topic, key, event))
    return job_id, outgoing


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
    event = ItemSubmitted.new(
        job_id=job_id, item_index=index, job_type=handler.job_type, input=payload
    )
    return Outgoing(topics.items(handler.job_type), key, event)
