"""The pure part of the projection: a batch of events becomes a set of coalesced changes.

No I/O here. The rules that need what is already in the tables (terminal statuses never
regress, counters move only on a real transition) are applied by the writer in SQL; this
module decides what a batch says, whatever its order and duplicates:

- one ``ItemChange`` per item: its submission (if seen) and its *first* terminal outcome
  (outcomes of a job share a partition, so "first" is the same on every replay);
- one ``JobChange`` per job: its submission (first wins) and earliest cancel request;
- the next offset per (topic, partition), to be stored in the same transaction.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from events.models import (
    AnyEvent,
    ItemCancelled,
    ItemFailed,
    ItemSubmitted,
    ItemSucceeded,
    JobCancelRequested,
    JobSubmitted,
)

# The item status each outcome type ends in.
OUTCOME_STATUS = {"ItemSucceeded": "success", "ItemFailed": "failed", "ItemCancelled": "cancelled"}


@dataclass(slots=True)
class ItemChange:
    job_id: UUID
    item_index: int
    submitted: bool = False
    input_data: dict[str, Any] | None = None
    submitted_at: datetime | None = None
    status: str | None = None  # the first terminal status seen in this batch
    output_data: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    duration_ms: float | None = None
    processed_at: datetime | None = None


@dataclass
class JobChange:
    job_id: UUID
    submitted: JobSubmitted | None = None
    cancel_requested_at: datetime | None = None


@dataclass
class Changes:
    jobs: dict[UUID, JobChange] = field(default_factory=dict)
    # by (job id as an int, item index): hashing a UUID runs Python code, an int's does not
    items: dict[tuple[int, int], ItemChange] = field(default_factory=dict)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    events: int = 0

    def __bool__(self) -> bool:
        return bool(self.jobs or self.items or self.positions)

    def advance(self, topic: str, partition: int, offset: int) -> None:
        """Record that everything up to ``offset`` of this partition is folded."""
        key = (topic, partition)
        self.positions[key] = max(self.positions.get(key, 0), offset + 1)

    def apply(self, event: AnyEvent) -> None:
        if isinstance(event, ItemSubmitted):
            self.submitted(event.job_id, event.item_index, event.input, event.occurred_at)
        elif isinstance(event, JobSubmitted):
            self.events += 1
            job = self._job(event.job_id)
            if job.submitted is None:
                job.submitted = event
        elif isinstance(event, JobCancelRequested):
            self.events += 1
            job = self._job(event.job_id)
            if job.cancel_requested_at is None or event.occurred_at < job.cancel_requested_at:
                job.cancel_requested_at = event.occurred_at
        else:
            self._apply_outcome(event)

    def _apply_outcome(self, event: ItemSucceeded | ItemFailed | ItemCancelled) -> None:
        output = code = message = None
        if isinstance(event, ItemSucceeded):
            output = event.output
        elif isinstance(event, ItemFailed):
            code, message = event.error_code, event.error_message
        self.outcome(
            event.job_id,
            event.item_index,
            OUTCOME_STATUS[event.event_type],
            event.attempts,
            event.duration_ms,
            event.occurred_at,
            output,
            code,
            message,
        )

    def submitted(
        self, job_id: UUID, item_index: int, input_data: dict[str, Any], occurred_at: datetime
    ) -> None:
        """An ``ItemSubmitted``, from its fields (the projector's one-pass reading)."""
        self.events += 1
        item = self._item(job_id, item_index)
        if not item.submitted:
            item.submitted = True
            item.input_data = input_data
            item.submitted_at = occurred_at

    def outcome(
        self,
        job_id: UUID,
        item_index: int,
        status: str,
        attempts: int,
        duration_ms: float,
        occurred_at: datetime,
        output: dict[str, Any] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """A terminal outcome (``status``: success, failed or cancelled), from its fields."""
        self.events += 1
        item = self._item(job_id, item_index)
        if item.status is not None:
            return  # a terminal status never changes: the first outcome wins
        item.status, item.attempts, item.duration_ms = status, attempts, duration_ms
        item.processed_at = occurred_at
        item.output_data, item.error_code, item.error_message = output, error_code, error_message

    def _job(self, job_id: UUID) -> JobChange:
        job = self.jobs.get(job_id)
        if job is None:
            job = self.jobs[job_id] = JobChange(job_id)
        return job

    def _item(self, job_id: UUID, item_index: int) -> ItemChange:
        key = (job_id.int, item_index)
        item = self.items.get(key)
        if item is None:
            item = self.items[key] = ItemChange(job_id, item_index)
        return item


def fold(events: list[AnyEvent]) -> Changes:
    changes = Changes()
    for event in events:
        changes.apply(event)
    return changes
