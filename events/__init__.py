"""Event contracts shared by the API, the workers, the projector and outside publishers."""

from events.codec import EventDecodeError, decode, encode
from events.models import (
    AnyEvent,
    ItemCancelled,
    ItemFailed,
    ItemOutcome,
    ItemSubmitted,
    ItemSucceeded,
    JobCancelRequested,
    JobSubmitted,
)
from events.topics import Topics

__all__ = [
    "AnyEvent",
    "EventDecodeError",
    "ItemCancelled",
    "ItemFailed",
    "ItemOutcome",
    "ItemSubmitted",
    "ItemSucceeded",
    "JobCancelRequested",
    "JobSubmitted",
    "Topics",
    "decode",
    "encode",
]
