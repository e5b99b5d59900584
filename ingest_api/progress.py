"""Live progress of a job as Server-Sent Events.

Each event is a full snapshot (counts, percent, items/s, ETA), so a client that reconnects
(sending Last-Event-ID or not) simply continues from the current state. A snapshot is sent
when something changed, a comment line keeps idle connections alive, and the stream ends
with a ``done`` event once the job has finished, when its time is up (the client
reconnects), or with an ``error`` event once the caller's key is revoked.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from ingest_api.schemas import JobView
from storage.tables import FINAL_JOB_STATUSES

POLL_S = 0.5
KEEPALIVE_S = 15.0


def items_per_s(job: JobView, now: datetime) -> float:
    """The job's throughput since its first outcome (0 before it)."""
    elapsed = (now - job.started_at).total_seconds() if job.started_at else 0.0
    return job.processed_items / elapsed if elapsed > 0 else 0.0


def snapshot(job: JobView, now: datetime) -> dict[str, Any]:
    processed = job.processed_items
    total = job.total_items or 0
    rate = items_per_s(job, now)
    remaining = max(0, total - processed)
    return {
        "batch_job_id": str(job.batch_job_id),
        "status": job.status,
        "total_items": job.total_items,
        "processed_items": processed,
        "success_items": job.success_items,
        "failed_items": job.failed_items,
        "cancelled_items": job.cancelled_items,
        "progress_percent": job.progress_percent,
        "items_per_s": round(rate, 1),
        "eta_s": round(remaining / rate, 1) if rate > 0 and remaining else None,
    }


def sse(data: dict[str, Any], *, event: str, event_id: str) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event_id.encode(),
        event.encode(),
        orjson.dumps(data),
    )


async def progress_events(
    read: Callable[[], JobView],
    job_id: UUID,
    *,
    max_s: float = float("inf"),
    key_is_valid: Callable[[], bool] | None = None,
    key_check_s: float = 30.0,
) -> AsyncIterator[bytes]:
    """``read`` returns the job's current view (raising JobNotFound if it disappears). The
    stream ends after ``max_s`` (the client reconnects and goes on), and as soon as
    ``key_is_valid`` (asked every ``key_check_s``) says the caller's key was revoked."""
    async for chunk in progress_of_jobs(
        lambda _: [read()],
        [job_id],
        max_s=max_s,
        key_is_valid=key_is_valid,
        key_check_s=key_check_s,
        revoked="the API key was revoked",
    ):
        yield chunk


async def progress_of_jobs(
    read: Callable[[list[UUID]], list[JobView]],
    job_ids: list[UUID],
    *,
    max_s: float = float("inf"),
    key_is_valid: Callable[[], bool] | None = None,
    key_check_s: float = 30.0,
    revoked: str = "the session has ended",
) -> AsyncIterator[bytes]:
    """Like ``progress_events``, for several jobs in one stream and one query a poll (the
    console's jobs list): a ``progress`` snapshot of each job when it changed, its ``done``
    once it has finished (then it is no longer read); the stream ends when all have. A job
    ``read`` does not return (not folded yet, or not the caller's) is asked for again."""
    waiting = list(dict.fromkeys(job_ids))
    last: dict[UUID, dict[str, Any]] = {}
    started = last_sent = key_checked = time.monotonic()
    while waiting:
        now = time.monotonic()
        if now - started >= max_s:
            yield b": the stream's time is up; reconnect to go on\n\n"
            return
        if key_is_valid is not None and now - key_checked >= key_check_s:
            key_checked = now
            if not await asyncio.to_thread(key_is_valid):
                error = {"error": "not_authenticated", "detail": revoked}
                yield sse(error, event="error", event_id="revoked")
                return
        sent = False
        for job in await asyncio.to_thread(read, waiting):
            state = snapshot(job, datetime.now(UTC))
            event_id = f"{job.batch_job_id}:{job.processed_items}:{job.status}"
            if job.status in FINAL_JOB_STATUSES:
                yield sse(state, event="done", event_id=event_id)
                waiting.remove(job.batch_job_id)
                sent = True
            elif _moved(last.get(job.batch_job_id), state):
                yield sse(state, event="progress", event_id=event_id)
                last[job.batch_job_id] = state
                sent = True
        if sent:
            last_sent = time.monotonic()
        elif time.monotonic() - last_sent >= KEEPALIVE_S:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()
        if waiting:
            await asyncio.sleep(POLL_S)


def _moved(before: dict[str, Any] | None, now: dict[str, Any]) -> bool:
    """Whether a snapshot says more than the one before (throughput and ETA alone change
    every poll: not news)."""
    if before is None:
        return True
    return any(before[k] != v for k, v in now.items() if k not in ("items_per_s", "eta_s"))
