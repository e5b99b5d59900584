"""The events on the wire: frozen pydantic models, one class per event type.

Every event carries the envelope (``event_id``, ``event_type``, ``schema_version``,
``occurred_at``, ``job_id``). Unknown fields are rejected so that a typo in an upstream
publisher is a dead letter, not silently lost data.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema

from events import ids
from events.callback_urls import CallbackUrl
from events.limits import MAX_INT, MAX_JSON_DEPTH, MIN_INT, TEXT_PATTERN, check_object
from events.topics import Lane

# A JSON object within the limits of ``events.limits`` (its strings, numbers and depth); its
# JSON Schema says what JSON Schema can say of it (its first level's values).
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(check_object),
    WithJsonSchema(
        {
            "type": "object",
            "description": (
                "No NUL or other control character but tab, newline and return in any "
                "string or key, integers within 64 bits, finite numbers, at most "
                f"{MAX_JSON_DEPTH} levels of nesting (here and in every nested value)"
            ),
            "propertyNames": {"pattern": TEXT_PATTERN},
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "pattern": TEXT_PATTERN},
                    {"type": "integer", "minimum": MIN_INT, "maximum": MAX_INT},
                    {"type": "number", "not": {"type": "integer"}},
                    {"type": "boolean"},
                    {"type": "null"},
                    {"type": "array"},
                    {"type": "object"},
                ]
            },
        }
    ),
]
# A string within the limits (no NUL nor other control character but tab, newline, return).
SafeText = Annotated[str, Field(pattern=TEXT_PATTERN)]
UserId = Annotated[SafeText, Field(min_length=1, max_length=128)]
# What the projected tables can hold: their counters and indexes are 32-bit integers, so a
# job has at most MAX_ITEMS items, and an outcome reports at most MAX_DURATION_MS (a week).
# An event past these bounds is a schema violation, dead-lettered, never a projector stuck
# on a row the database refuses.
MAX_ITEMS = 2**31 - 1
MAX_DURATION_MS = 7 * 24 * 3600 * 1000.0
Count = Annotated[int, Field(ge=0, le=MAX_ITEMS)]
ItemIndex = Annotated[int, Field(ge=0, lt=MAX_ITEMS)]
DurationMs = Annotated[float, Field(ge=0, le=MAX_DURATION_MS)]
ErrorCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
JobType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """The envelope every event shares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    event_type: str
    schema_version: int
    occurred_at: AwareDatetime
    job_id: UUID


class JobSubmitted(Event):
    event_type: Literal["JobSubmitted"] = "JobSubmitted"
    schema_version: Literal[1] = 1
    job_type: JobType
    user_id: UserId
    total_items: Count
    metadata: JsonObject = Field(default_factory=dict)
    retry_of: UUID | None = None
    # Its lane (events.topics): where its items and their outcomes travel.
    priority: Lane = "bulk"
    # Where its JobFinished is delivered as a signed webhook (events.callback_urls).
    callback_url: CallbackUrl | None = None

    @classmethod
    def new(cls, *, job_id: UUID, **fields: Any) -> "JobSubmitted":
        return cls(
            event_id=ids.job_submitted_id(job_id), occurred_at=utc_now(), job_id=job_id, **fields
        )


class JobCancelRequested(Event):
    event_type: Literal["JobCancelRequested"] = "JobCancelRequested"
    schema_version: Literal[1] = 1
    user_id: UserId

    @classmethod
    def new(cls, *, job_id: UUID, user_id: str) -> "JobCancelRequested":
        return cls(
            event_id=ids.job_cancel_requested_id(job_id),
            occurred_at=utc_now(),
            job_id=job_id,
            user_id=user_id,
        )


class ItemSubmitted(Event):
    event_type: Literal["ItemSubmitted"] = "ItemSubmitted"
    schema_version: Literal[1] = 1
    job_type: JobType
    item_index: ItemIndex
    input: JsonObject

    @classmethod
    def new(cls, *, job_id: UUID, item_index: int, **fields: Any) -> "ItemSubmitted":
        return cls(
            event_id=ids.item_submitted_id(job_id, item_index),
            occurred_at=utc_now(),
            job_id=job_id,
            item_index=item_index,
            **fields,
        )


class _Outcome(Event):
    item_index: ItemIndex
    attempts: Count = 1
    duration_ms: DurationMs = 0.0

    @classmethod
    def new(cls, *, job_id: UUID, item_index: int, **fields: Any) -> Any:
        return cls(
            event_id=ids.item_outcome_id(job_id, item_index),
            occurred_at=utc_now(),
            job_id=job_id,
            item_index=item_index,
            **fields,
        )


class ItemSucceeded(_Outcome):
    event_type: Literal["ItemSucceeded"] = "ItemSucceeded"
    schema_version: Literal[1] = 1
    output: JsonObject


class ItemFailed(_Outcome):
    event_type: Literal["ItemFailed"] = "ItemFailed"
    schema_version: Literal[1] = 1
    error_code: ErrorCode
    error_message: Annotated[SafeText, Field(max_length=4096)]


class ItemCancelled(_Outcome):
    event_type: Literal["ItemCancelled"] = "ItemCancelled"
    schema_version: Literal[1] = 1
    attempts: Count = 0


class ErrorCount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: ErrorCode
    count: Count


class JobLinks(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    job: Annotated[SafeText, Field(max_length=4096)]
    items: Annotated[SafeText, Field(max_length=4096)]


class JobFinished(Event):
    """A job reached its final status (on the notifications topic, key: the job id).

    One per job: its ``event_id`` is derived from the job id and the final status, so a
    republished one (around a crash) is a duplicate by its id. A replay of the topics
    announces nothing again."""

    event_type: Literal["JobFinished"] = "JobFinished"
    schema_version: Literal[1] = 1
    user_id: UserId
    job_type: JobType
    status: Literal["completed", "cancelled"]
    total_items: Count
    success_items: Count
    failed_items: Count
    cancelled_items: Count
    success_rate: Annotated[float, Field(ge=0, le=1)]
    created_at: AwareDatetime | None
    started_at: AwareDatetime | None
    finished_at: AwareDatetime
    top_errors: Annotated[list[ErrorCount], Field(max_length=5)]
    metadata: JsonObject = Field(default_factory=dict)
    links: JobLinks

    @classmethod
    def new(
        cls, *, job_id: UUID, status: str, finished_at: datetime, **fields: Any
    ) -> "JobFinished":
        return cls(
            event_id=ids.job_finished_id(job_id, status),
            occurred_at=finished_at,
            job_id=job_id,
            status=status,
            finished_at=finished_at,
            **fields,
        )


ItemOutcome = ItemSucceeded | ItemFailed | ItemCancelled
AnyEvent = (
    JobSubmitted | JobCancelRequested | ItemSubmitted | ItemSucceeded | ItemFailed | ItemCancelled
)

EVENT_CLASSES: dict[str, type[Event]] = {
    cls.model_fields["event_type"].default: cls
    for cls in (
        JobSubmitted,
        JobCancelRequested,
        ItemSubmitted,
        ItemSucceeded,
        ItemFailed,
        ItemCancelled,
    )
}

# The events another service reads from the notifications topic (not folded into tables).
NOTIFICATION_CLASSES: dict[str, type[Event]] = {"JobFinished": JobFinished}
