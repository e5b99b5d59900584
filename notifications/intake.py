"""From the notifications topic to deliveries: each ``JobFinished`` becomes a delivery to
its job's callback URL (or its owner's default), keyed by the event id, so an event read
twice (republished around a crash, or read again after one) is delivered once.

The event is untrusted input (anyone who may write to the topic can publish one): it is
decoded by the contract, and it must agree with the job as projected (owner and final
status); else it is dead-lettered. The owner, the URL and the secret come from the tables,
never from the event. Offsets are committed only after the deliveries are stored.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aiokafka.structs import ConsumerRecord
from sqlalchemy import Engine, text

from events.callback_urls import CallbackPolicy, CallbackUrlRefused
from events.codec import EventDecodeError, decode_notification
from streaming.dead_letters import DeadLetter, dead_letter

log = logging.getLogger(__name__)

JOB = text(
    """
SELECT j.user_id, j.status, COALESCE(j.callback_url, e.url) AS url
FROM jobs j LEFT JOIN webhook_endpoints e ON e.user_id = j.user_id
WHERE j.id = :job_id
"""
)
INSERT_DELIVERY = text(
    """
INSERT INTO webhook_deliveries (event_id, job_id, user_id, url, host, body, status,
                                retry_until, next_attempt_at, last_error)
VALUES (:event_id, :job_id, :user_id, :url, :host, :body, :status,
        now() + make_interval(secs => :window), :next_attempt_at, :last_error)
ON CONFLICT (event_id) DO NOTHING
"""
)


@dataclass
class Intake:
    """What a batch of records came to."""

    deliveries: int = 0
    without_url: int = 0
    letters: list[DeadLetter] = field(default_factory=list)


def take_in(
    engine: Engine,
    policy: CallbackPolicy,
    records: list[ConsumerRecord[Any, Any]],
    retry_window: timedelta,
    max_event_bytes: int = 1_000_000,
) -> Intake:
    """Store the deliveries of a batch of records (in one transaction); return them and the
    records to dead-letter."""
    intake = Intake()
    rows = []
    with engine.begin() as conn:
        for record in records:
            try:
                event = decode_notification(record.value, max_bytes=max_event_bytes)
            except EventDecodeError as exc:
                intake.letters.append(dead_letter(record, exc.reason, exc.message))
                continue
            job = conn.execute(JOB, {"job_id": event.job_id}).one_or_none()
            if job is None or job.user_id != event.user_id or job.status != event.status:
                seen = "no such job" if job is None else f"the job is {job.status!r}"
                intake.letters.append(
                    dead_letter(
                        record,
                        "not_as_projected",
                        f"a JobFinished ({event.status}) that the tables do not bear out: {seen}",
                    )
                )
                continue
            if not job.url:
                intake.without_url += 1
                continue
            row = _delivery(policy, event.event_id, event.job_id, job, record.value)
            rows.append({**row, "window": retry_window.total_seconds()})
        if rows:
            conn.execute(INSERT_DELIVERY, rows)
    intake.deliveries = len(rows)
    return intake


def _delivery(
    policy: CallbackPolicy, event_id: UUID, job_id: UUID, job: Any, body: bytes
) -> dict[str, Any]:
    """A delivery to make; one to a URL the policy refuses is stored failed, with why (the
    URL was allowed when the job was submitted, or came from a direct publisher)."""
    row: dict[str, Any] = {
        "event_id": event_id,
        "job_id": job_id,
        "user_id": job.user_id,
        "url": job.url,
        "body": body,
        "window": 0,
        "status": "pending",
        "next_attempt_at": None,
        "last_error": None,
    }
    try:
        parts = policy.check(job.url)
    except CallbackUrlRefused as exc:
        return {**row, "host": "", "status": "failed", "last_error": f"refused: {exc}"}
    return {**row, "host": (parts.hostname or "").lower(), "next_attempt_at": datetime.now(UTC)}
