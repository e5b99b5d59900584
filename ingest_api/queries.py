"""Reads from the projected tables, always scoped to the calling user."""

import base64
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, true, tuple_
from sqlalchemy.orm import Session

from ingest_api.acceptance import accepted_view, unfolded_views
from ingest_api.errors import InvalidCursor, JobNotFound
from ingest_api.schemas import ItemPage, ItemView, JobPage, JobView, ResultView
from storage.tables import Item, Job, Result

UNSUCCESSFUL = ("failed", "cancelled")  # the statuses of the items marked `unsuccessful`


def get_job(session: Session, *, user_id: str, job_id: UUID) -> JobView:
    row = session.execute(
        select(Job, Result)
        .outerjoin(Result, Result.job_id == Job.id)
        .where(Job.id == job_id, Job.user_id == user_id)
    ).one_or_none()
    if row is None:
        accepted = accepted_view(session, user_id=user_id, job_id=job_id)
        if accepted is not None:
            return accepted  # read-your-writes: accepted, not folded yet
        raise JobNotFound(job_id)  # another user's job looks exactly like a missing one
    return _job_view(*row)


def get_jobs(session: Session, *, user_id: str, job_ids: list[UUID]) -> list[JobView]:
    """The caller's jobs among ``job_ids`` that are folded (others' and unknown ones are
    left out), in one query."""
    rows = session.execute(
        select(Job, Result)
        .outerjoin(Result, Result.job_id == Job.id)
        .where(Job.id.in_(job_ids), Job.user_id == user_id)
    ).all()
    return [_job_view(job, result) for job, result in rows]


def list_jobs(
    session: Session,
    *,
    user_id: str,
    status: str | None,
    cursor: str | None,
    limit: int,
    job_type: str | None = None,
) -> JobPage:
    """The caller's jobs, newest first; the cursor is where the previous page ended. The
    first page also lists the caller's jobs accepted but not folded yet (as pending)."""
    query = (
        select(Job, Result)
        .outerjoin(Result, Result.job_id == Job.id)
        .where(Job.user_id == user_id, Job.created_at.is_not(None))
    )
    if status is not None:
        query = query.where(Job.status == status)
    if job_type is not None:
        query = query.where(Job.job_type == job_type)
    if cursor is not None:
        created_at, job_id = _decode_cursor(cursor)
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, job_id))
    rows = session.execute(
        query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1][0] if rows else None
    unfolded: list[JobView] = []
    if cursor is None and status in (None, "pending"):  # read-your-writes, on the first page
        unfolded = unfolded_views(session, user_id=user_id, job_type=job_type, limit=limit)
    return JobPage(
        jobs=[*unfolded, *(_job_view(job, result) for job, result in rows)],
        next_cursor=_encode_cursor(last) if more and last else None,
    )


def _encode_cursor(job: Job) -> str:
    assert job.created_at is not None
    raw = f"{job.created_at.isoformat()}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, job_id = raw.split("|")
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, UUID(job_id)
    except (ValueError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this API returned") from None


def _job_view(job: Job, result: Result | None) -> JobView:
    return JobView(
        batch_job_id=job.id,
        job_type=job.job_type,
        priority=job.priority,
        status=job.status,
        total_items=job.total_items,
        processed_items=job.processed_items,
        success_items=job.success_items,
        failed_items=job.failed_items,
        cancelled_items=job.cancelled_items,
        progress_percent=job.progress_percent,
        metadata=job.job_metadata,
        retry_of=job.retry_of,
        callback_url=job.callback_url,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        result=None
        if result is None
        else ResultView(
            total_time_ms=result.total_time_ms,
            avg_item_time_ms=result.avg_item_time_ms,
            success_rate=result.success_rate,
            result_summary=result.result_summary,
        ),
    )


def list_items(
    session: Session,
    *,
    user_id: str,
    job_id: UUID,
    after: int | None,
    limit: int,
    status: str | None,
) -> ItemPage:
    owned = session.scalar(select(Job.id).where(Job.id == job_id, Job.user_id == user_id))
    if owned is None:
        if accepted_view(session, user_id=user_id, job_id=job_id) is not None:
            return ItemPage(items=[], next_cursor=None)  # accepted, not folded yet
        raise JobNotFound(job_id)
    query = select(Item).where(Item.job_id == job_id)
    if status is not None:
        query = query.where(Item.status == status)
        if status in UNSUCCESSFUL:  # implied; what the partial index serves
            query = query.where(Item.unsuccessful == true())
    if after is not None:
        query = query.where(Item.item_index > after)
    rows = list(session.scalars(query.order_by(Item.item_index).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return ItemPage(
        items=[
            ItemView(
                item_index=r.item_index,
                status=r.status,
                input_data=r.input_data,
                output_data=r.output_data,
                error_code=r.error_code,
                error_message=r.error_message,
                attempts=r.attempts,
                duration_ms=r.duration_ms,
                processed_at=r.processed_at,
            )
            for r in rows
        ],
        next_cursor=str(rows[-1].item_index) if more and rows else None,
    )


def failed_inputs(
    session: Session, *, job_id: UUID, after: int, limit: int
) -> list[tuple[int, dict[str, Any] | None]]:
    """A chunk of a job's failed items (index, input), in index order after ``after``."""
    rows = session.execute(
        select(Item.item_index, Item.input_data)
        .where(
            Item.job_id == job_id,
            Item.status == "failed",
            Item.unsuccessful == true(),  # implied; what the partial index serves
            Item.item_index > after,
        )
        .order_by(Item.item_index)
        .limit(limit)
    ).all()
    return [(index, data) for index, data in rows]
