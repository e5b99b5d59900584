"""Reading a record of a job type's items topic: the item, or exactly why not.

The hot path validates the event in one pass of pydantic's JSON validator, into a typed
dict (``events.typed_read``: no model object for the envelope, the ids as canonical text),
its input as the JSON object it is, held to the contract's limits (``events.limits``), and
then the input as the handler's input model. What it refuses is decoded again by
``events.codec.decode``, which upcasts old versions or says exactly what is wrong; the two
agree on every event (``tests/unit/test_item_reader.py``).
"""

from typing import Any, Literal

from pydantic import ValidationError

from consumers.processing import SubmittedItem, new_tuple
from events.codec import MAX_EVENT_BYTES, decode
from events.models import ItemSubmitted
from events.typed_read import NeedsFullCheck, job_uuid, json_reader, typed_dict_of
from jobtypes.contract import Handler


class UnexpectedEvent(Exception):
    """A valid event that does not belong on this items topic (another type of event, or
    an item of another job type)."""


def wire_item(handler: Handler) -> Any:
    """``ItemSubmitted`` as a typed dict (``events.typed_read``) whose job type is the
    handler's."""
    return typed_dict_of(
        ItemSubmitted, f"ItemSubmitted_{handler.job_type}", job_type=Literal[handler.job_type]
    )


class ItemReader:
    def __init__(self, handler: Handler, max_bytes: int = MAX_EVENT_BYTES):
        self.job_type = handler.job_type
        self.max_bytes = max_bytes
        self._validate_json = json_reader(wire_item(handler))
        self._validate_input = handler.input_model.__pydantic_validator__.validate_python

    def read(self, value: bytes | None) -> SubmittedItem:
        """The item a record submits. Raises ``EventDecodeError`` for what is not a valid
        event, ``UnexpectedEvent`` for a valid event that is not an item of this job type.
        An item whose input is not valid for the handler is returned with its raw input
        (``process_item`` fails it with the validation's message)."""
        if value is not None and len(value) <= self.max_bytes:
            try:
                event = self._validate_json(value)
            except (ValidationError, NeedsFullCheck):
                pass
            else:
                job, raw = event["job_id"], event["input"]
                try:
                    item = self._validate_input(raw)
                except ValidationError:
                    item = raw  # ``process_item`` fails it with the validation's message
                read = (job_uuid(job), job, event["item_index"], item)
                return new_tuple(SubmittedItem, read)
        decoded = decode(value, max_bytes=self.max_bytes)  # raises EventDecodeError
        if not isinstance(decoded, ItemSubmitted) or decoded.job_type != self.job_type:
            raise UnexpectedEvent(
                f"{decoded.event_type} for job type {getattr(decoded, 'job_type', None)!r} "
                f"is not an item of {self.job_type!r}"
            )
        return SubmittedItem.of(decoded)

    def read_all(self, values: list[bytes | None]) -> list[SubmittedItem | Exception]:
        """``read`` of each value: its item, or the exception ``read`` raised for it."""
        read = self.read
        items: list[SubmittedItem | Exception] = []
        append = items.append
        for value in values:
            try:
                append(read(value))
            except Exception as exc:  # (the caller tells apart what it is)
                append(exc)
        return items
