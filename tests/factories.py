"""Event builders shared by unit and integration tests."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from events.models import (
    AnyEvent,
    ItemCancelled,
    ItemFailed,
    ItemSubmitted,
    ItemSucceeded,
    JobCancelRequested,
    JobSubmitted,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job_submitted(
    job_id: UUID, total: int, *, user: str = "alice", job_type: str = "query", when: float = 0
) -> JobSubmitted:
    return JobSubmitted.new(
        job_id=job_id,
        job_type=job_type,
        user_id=user,
        total_items=total,
        metadata={"source": "test"},
    ).model_copy(update={"occurred_at": at(when)})


def item_submitted(
    job_id: UUID, index: int, *, job_type: str = "query", when: float = 0
) -> ItemSubmitted:
    return ItemSubmitted.new(
        job_id=job_id, item_index=index, job_type=job_type, input={"content_hash": f"{index:064x}"}
    ).model_copy(update={"occurred_at": at(when)})


def succeeded(
    job_id: UUID, index: int, *, when: float = 1, duration_ms: float = 1.25, attempts: int = 1
) -> ItemSucceeded:
    event: ItemSucceeded = ItemSucceeded.new(
        job_id=job_id,
        item_index=index,
        attempts=attempts,
        duration_ms=duration_ms,
        output={"n": index},
    )
    return event.model_copy(update={"occurred_at": at(when)})


def failed(
    job_id: UUID, index: int, *, code: str = "boom", when: float = 1, duration_ms: float = 2.5
) -> ItemFailed:
    event: ItemFailed = ItemFailed.new(
        job_id=job_id,
        item_index=index,
        attempts=3,
        duration_ms=duration_ms,
        error_code=code,
        error_message=f"{code} happened",
    )
    return event.model_copy(update={"occurred_at": at(when)})


def cancelled(job_id: UUID, index: int, *, when: float = 1) -> ItemCancelled:
    event: ItemCancelled = ItemCancelled.new(job_id=job_id, item_index=index)
    return event.model_copy(update={"occurred_at": at(when)})


def cancel_requested(job_id: UUID, *, when: float = 0.5) -> JobCancelRequested:
    return JobCancelRequested.new(job_id=job_id, user_id="alice").model_copy(
        update={"occurred_at": at(when)}
    )


def mixed_job(total: int = 10, job_id: UUID | None = None) -> tuple[UUID, list[AnyEvent]]:
    """A job whose items end in success, or in one of two error codes, in log order."""
    job_id = job_id or uuid4()
    events: list[AnyEvent] = [job_submitted(job_id, total)]
    for i in range(total):
        events.append(item_submitted(job_id, i, when=i * 0.01))
    for i in range(total):
        when = 1 + i * 0.1
        if i % 5 == 3:
            events.append(failed(job_id, i, code="bad_signature", when=when))
        elif i % 7 == 6:
            events.append(failed(job_id, i, code="not_enrolled", when=when))
        else:
            events.append(succeeded(job_id, i, when=when, duration_ms=1 + i / 4))
    return job_id, events


def as_dict(event: Any) -> dict[str, Any]:
    return event.model_dump(mode="json")  # type: ignore[no-any-return]
