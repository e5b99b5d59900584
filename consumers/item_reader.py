"""Reading a record of a job type's items topic: the item, or exactly why not.

The hot path validates the event and the handler's input in one pass of pydantic's JSON
validator, into a typed dict (no model object for the envelope), with the ids taken as
canonical text (a UUID object per id costs more than the rest of the envelope). What it
refuses is decoded again by ``events.codec.decode``, which upcasts old versions or says
exactly what is wrong; the two agree on every event (``tests/unit/test_item_reader.py``).
"""

import functools
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from consumers.handlers.base import Handler
from consumers.processing import SubmittedItem
from events.codec import MAX_EVENT_BYTES, decode
from events.models import ItemSubmitted

# A UUID as ``str(UUID(...))`` writes it; another spelling of a valid UUID takes the slow path.
CanonicalUuid = Annotated[
    str, Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]


class UnexpectedEvent(Exception):
    """A valid event that does not belong on this items topic (another type of event, or
    an item of another job type)."""


@functools.lru_cache(maxsize=4096)
def _job_uuid(text: str) -> UUID:
    return UUID(text)


def _strictly(version: int) -> Any:
    """The version as the codec takes it: an integer, so not ``true`` nor ``1.0``."""
    return Annotated[int, Strict(), Field(ge=version, le=version)]


def wire_item(handler: Handler) -> Any:  # type: ignore[type-arg]
    """``ItemSubmitted`` as a typed dict: every field of the model, each required, with its
    own constraints, except the ids (canonical text), the version (strict), the job type
    (the handler's) and the input (the handler's input model)."""
    fields: dict[str, Any] = {
        name: Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        for name, field in ItemSubmitted.model_fields.items()
    }
    fields.update(
        schema_version=_strictly(ItemSubmitted.model_fields["schema_version"].default),
        event_id=CanonicalUuid,
        job_id=CanonicalUuid,
        job_type=Literal[handler.job_type],
        input=handler.input_model,
    )
    typed = TypedDict(f"ItemSubmitted_{handler.job_type}", fields)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return typed


class ItemReader:
    def __init__(self, handler: Handler, max_bytes: int = MAX_EVENT_BYTES):  # type: ignore[type-arg]
        self.job_type = handler.job_type
        self.max_bytes = max_bytes
        self._validate_json = TypeAdapter(wire_item(handler)).validator.validate_json

    def read(self, value: bytes | None) -> SubmittedItem:
        """The item a record submits. Raises ``EventDecodeError`` for what is not a valid
        event, ``UnexpectedEvent`` for a valid event that is not an item of this job type.
        An item whose input is not valid for the handler is returned with its raw input
        (``process_item`` fails it with the validation's message)."""
        if value is not None and len(value) <= self.max_bytes:
            try:
                event = self._validate_json(value)
            except ValidationError:
                pass
            else:
                job = event["job_id"]
                return SubmittedItem(_job_uuid(job), job, event["item_index"], event["input"])
        decoded = decode(value, max_bytes=self.max_bytes)  # raises EventDecodeError
        if not isinstance(decoded, ItemSubmitted) or decoded.job_type != self.job_type:
            raise UnexpectedEvent(
                f"{decoded.event_type} for job type {getattr(decoded, 'job_type', None)!r} "
                f"is not an item of {self.job_type!r}"
            )
        return SubmittedItem.of(decoded)
