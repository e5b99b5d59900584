"""Turning an accepted batch into events: one JobSubmitted, then one ItemSubmitted per item,
each item keyed by its handler's routing key."""

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, create_model

from consumers.handlers.base import Handler, default_routing_keys
from consumers.processing import located_message, validation_message
from consumers.registry import UnknownJobType, handler_class
from events import item_wire
from events.ids import job_id_text
from events.topics import Topics
from ingest_api.errors import InvalidBatch, TooLarge
from ingest_api.publisher import Outgoing
from ingest_api.schemas import JobRequest

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


class _JobTypeOnly(BaseModel):
    job_type: str


class _ItemsOnly(BaseModel):
    items: list[Any]


@functools.cache
def _request_model(input_model: type[BaseModel]) -> type[JobRequest]:
    """``JobRequest`` whose items are the job type's input model: a body is validated in
    one pass from its JSON, without a dict per item first."""
    return create_model(  # type: ignore[no-any-return]
        f"{input_model.__name__}Request",
        __base__=JobRequest,
        items=(list[input_model], Field(min_length=1)),  # type: ignore[valid-type]
    )


def job_type_of(raw: bytes) -> str:
    """The job type a JSON request body names (validated as a whole afterwards); a body
    without one gets the 422 of the full request model."""
    try:
        return _JobTypeOnly.model_validate_json(raw).job_type
    except ValidationError:
        pass
    try:
        JobRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    raise AssertionError("a request without a job type validated")  # pragma: no cover


def parse_request(handler: Handler, raw: bytes, max_items: int) -> JobRequest:  # type: ignore[type-arg]
    """The request with its items validated against the job type's input model. Mistakes
    outside the items are a 422 in FastAPI's form; invalid items an InvalidBatch naming the
    first ones by index; too many items a TooLarge."""
    try:
        request = _request_model(handler.input_model).model_validate_json(raw)
    except ValidationError as exc:
        raise _request_error(exc, raw) from None
    if len(request.items) > max_items:
        raise TooLarge(f"{len(request.items)} items exceed the limit of {max_items} per request")
    return request


def _request_error(exc: ValidationError, raw: bytes) -> Exception:
    outside: list[Any] = []
    first_by_item: dict[int, Any] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
            first_by_item.setdefault(loc[1], error)
        else:
            outside.append(error)
    if outside:
        return RequestValidationError(outside)
    total = len(_ItemsOnly.model_validate_json(raw).items)  # only on this path: count them
    invalid = [
        {
            "item_index": index,
            "message": located_message(error["loc"][2:], error["msg"]),
        }
        for index, error in sorted(first_by_item.items())[:MAX_REPORTED_ERRORS]
    ]
    return InvalidBatch(f"{len(first_by_item)} of {total} items are invalid", invalid_items=invalid)


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
