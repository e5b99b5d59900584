"""Turning an accepted batch into events: one JobSubmitted, then one ItemSubmitted per item,
each item keyed by its handler's routing key."""

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import from_json

from events import item_wire
from events.callback_urls import CallbackUrl, CallbackUrlRefused
from events.ids import job_id_text
from events.limits import texts_are_clean, value_problem
from events.topics import Lane, Topics
from ingest_api.errors import InvalidBatch, TooLarge
from ingest_api.publisher import Outgoing
from ingest_api.schemas import JobRequest
from ingest_api.settings import ApiSettings
from jobtypes.contract import Handler, default_routing_key, default_routing_keys
from jobtypes.registry import UnknownJobType, handler_class
from jobtypes.validation import located_message, validation_message

MAX_REPORTED_ERRORS = 20
CHUNK = 5_000  # items published per round trip
_CALLBACK_URL: TypeAdapter[str] = TypeAdapter(CallbackUrl)


def handler_for(job_type: str) -> Handler:
    try:
        return handler_class(job_type)()
    except UnknownJobType as exc:
        raise InvalidBatch(str(exc), known_job_types=exc.known) from None


def note_invalid(
    errors: list[dict[str, Any]], index: int, exc: ValidationError, line: int | None = None
) -> None:
    """Keep the first invalid items, by index (and an upload's line) with their messages,
    for the 422."""
    if len(errors) < MAX_REPORTED_ERRORS:
        error: dict[str, Any] = {"item_index": index, "message": validation_message(exc)}
        if line is not None:
            error["line"] = line
        errors.append(error)


class _JobTypeOnly(BaseModel):
    job_type: str


class _ItemsOnly(BaseModel):
    items: list[Any]


@functools.cache
def _request_model(input_model: type[BaseModel]) -> type[JobRequest]:
    """``JobRequest`` whose items are the job type's input model: a body is validated in
    one pass from its JSON, without a dict per item first."""
    return create_model(
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


def parse_request(handler: Handler, raw: bytes, max_items: int) -> JobRequest:
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


def item_payloads(
    handler: Handler,
    items: Sequence[Any],
    *,
    start: int,
    max_item_bytes: int,
    errors: list[dict[str, Any]],
) -> list[bytes]:
    """Validated items numbered from ``start``, each as the JSON its event carries; an item
    past the contract's limits (``events.limits``) is noted in ``errors``, one past
    ``max_item_bytes`` written raises ``TooLarge``."""
    to_json = handler.input_model.__pydantic_serializer__.to_json
    payloads = []
    for index, item in enumerate(items, start):
        payload: bytes = to_json(item, exclude_none=True)
        if len(payload) > max_item_bytes:
            raise TooLarge(f"item {index}: {len(payload)} bytes exceeds {max_item_bytes}")
        found = value_problem(item, texts=not texts_are_clean(payload))
        if found is not None and len(errors) < MAX_REPORTED_ERRORS:
            errors.append({"item_index": index, "message": str(found)})
        payloads.append(payload)
    return payloads


def check_metadata(metadata: dict[str, Any] | None, max_bytes: int) -> None:
    """``TooLarge`` for metadata past ``max_bytes`` (as compact JSON). Its values are held
    to the contract's limits by ``JobRequest`` (or ``metadata_param``)."""
    if metadata is None:
        return
    size = len(orjson.dumps(metadata))
    if size > max_bytes:
        raise TooLarge(f"metadata: {size} bytes exceeds the limit of {max_bytes}")


def callback_url_param(text: str | None) -> str | None:
    """An NDJSON upload's ``callback_url`` query parameter, held to the contract's shape."""
    if text is None:
        return None
    try:
        return _CALLBACK_URL.validate_python(text)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise InvalidBatch(f"callback_url: {message}") from None


def check_callback_url(url: str | None, settings: ApiSettings) -> None:
    """422 for a callback URL this deployment will never call (``events.callback_urls``)."""
    if url is None:
        return
    try:
        settings.callback_policy.check(url)
    except CallbackUrlRefused as exc:
        raise InvalidBatch(f"callback_url: {exc}") from None


def metadata_param(text: str | None) -> dict[str, Any] | None:
    """The ``metadata`` query parameter of an NDJSON upload: a JSON object within the
    contract's limits, or ``InvalidBatch``."""
    if text is None:
        return None
    try:
        value = from_json(text, allow_inf_nan=False)
    except ValueError:
        raise InvalidBatch("metadata must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidBatch("metadata must be a JSON object")
    found = value_problem(value)
    if found is not None:
        raise InvalidBatch(f"metadata: {found}", field="metadata")
    return value


def invalid_items(errors: list[dict[str, Any]], total: int) -> InvalidBatch:
    """The 422 of a batch with invalid items (``errors``: the first ones, by index, at most
    ``MAX_REPORTED_ERRORS``: then there may be more)."""
    more = "+" if len(errors) >= MAX_REPORTED_ERRORS else ""
    return InvalidBatch(f"{len(errors)}{more} of {total} items are invalid", invalid_items=errors)


def checked_payloads(
    handler: Handler,
    items: list[Any],
    max_item_bytes: int,
) -> list[bytes]:
    """``item_payloads`` of a whole request's items, or the 422 naming the invalid ones."""
    errors: list[dict[str, Any]] = []
    payloads = item_payloads(handler, items, start=0, max_item_bytes=max_item_bytes, errors=errors)
    if errors:
        raise invalid_items(errors, len(items))
    return payloads


def spooled_chunk(
    handler: Handler,
    job_id: UUID,
    start: int,
    items: Sequence[Any],
    payloads: list[bytes],
) -> SpooledChunk:
    """Validated items numbered from ``start``, and their ``payloads``, as a spooled chunk."""
    if not handler.keys_by_item():
        return payloads, None
    return payloads, handler.routing_keys(items, job_id=job_id, start=start)


def spooled_chunks(
    handler: Handler,
    job_id: UUID,
    items: list[Any],
    payloads: list[bytes],
    size: int = CHUNK,
) -> Iterator[SpooledChunk]:
    for start in range(0, len(items), size):
        end = start + size
        yield spooled_chunk(handler, job_id, start, items[start:end], payloads[start:end])


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
    handler: Handler,
    job_id: UUID,
    chunks: Iterable[SpooledChunk],
    lane: Lane,
) -> Iterator[list[Outgoing]]:
    """The ItemSubmitted messages of a job's items, chunk by chunk, numbered from 0, on its
    lane's topic; the job's part of every event is worked out once per chunk."""
    topic, job = topics.items(handler.job_type, lane), job_id_text(job_id)
    start = 0
    for chunk in chunks:
        encoder = item_wire.SubmittedEncoder(job, handler.job_type)
        yield item_messages(topic, encoder, start, chunk)
        start += len(chunk[0])


def retry_chunk(
    handler: Handler,
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
            keys.append(default_routing_key(job_id_text(job_id), index))
        else:
            payloads.append(to_json(item, exclude_none=True))
            keys.append(handler.routing_key(item, job_id=job_id, item_index=index))
    return payloads, keys
