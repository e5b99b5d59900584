"""The API's record of accepted jobs: idempotent submission and read-your-writes.

A job is recorded before its events are published and marked published once Kafka has
acknowledged all of them. A repeated request with the same Idempotency-Key (from the same
user) gets the same job: if the first attempt died half-way through publishing, the same
deterministic events are published again, which changes nothing downstream.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from pydantic_core import from_json
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ingest_api.schemas import JobView
from ingest_api.statements import Statements
from storage.tables import AcceptedJob, Job


def request_hash(raw: bytes) -> str:
    """What a JSON request says, independent of its spelling (key order, spaces): two
    bodies with the same Idempotency-Key must say the same to get the same job. Computed
    only for requests that carry a key."""
    body = from_json(raw, allow_inf_nan=True)  # as the request model read it
    normal = {
        "job_type": body["job_type"],
        "items": body["items"],
        "metadata": body.get("metadata"),
        "priority": body.get("priority"),
        "callback_url": body.get("callback_url"),
    }
    try:
        text = orjson.dumps(normal, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # what orjson cannot write (a field a model ignores)
        written = json.dumps(normal, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        text = written.encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest()


class Accepted(NamedTuple):
    """A recorded job, as the submission path needs it."""

    job_id: UUID
    total_items: int
    priority: str
    request_hash: str | None
    published_at: datetime | None


_COLUMNS = "job_id, total_items, priority, request_hash, published_at"
_FIND = f"SELECT {_COLUMNS} FROM accepted_jobs WHERE user_id = $1 AND idempotency_key = $2"
_RECORD = f"""
INSERT INTO accepted_jobs
    (job_id, user_id, job_type, total_items, priority, metadata, idempotency_key, request_hash)
VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8)
ON CONFLICT DO NOTHING
RETURNING {_COLUMNS}
"""
# Marking needs no wait for the disk: were the mark lost in a crash of PostgreSQL, the job
# would only read as unpublished until the projector folds it, and a retry with the same
# Idempotency-Key would publish the same events again, which changes nothing downstream.
_MARK_PUBLISHED = """
WITH no_flush AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true))
UPDATE accepted_jobs SET published_at = now()
FROM no_flush
WHERE job_id = $1 AND published_at IS NULL
"""


async def find(statements: Statements, *, user_id: str, idempotency_key: str) -> Accepted | None:
    row = await statements.fetchrow(_FIND, user_id, idempotency_key)
    return None if row is None else Accepted(*row)


async def record(
    statements: Statements,
    *,
    job_id: UUID,
    user_id: str,
    job_type: str,
    total_items: int,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
    digest: str | None,
    priority: str = "bulk",
) -> Accepted:
    """Record a new job (one statement, its commit durable); when the user's Idempotency-Key
    is taken (a race between two requests with it), return the job that has it."""
    row = await statements.fetchrow(
        _RECORD,
        job_id,
        user_id,
        job_type,
        total_items,
        priority,
        None if metadata is None else orjson.dumps(metadata).decode(),
        idempotency_key,
        digest,
    )
    if row is not None:
        return Accepted(*row)
    assert idempotency_key is not None  # (a new job id conflicts with nothing else)
    winner = await find(statements, user_id=user_id, idempotency_key=idempotency_key)
    assert winner is not None
    return winner


async def mark_published(statements: Statements, *, job_id: UUID) -> None:
    await statements.execute(_MARK_PUBLISHED, job_id)


def accepted_view(session: Session, *, user_id: str, job_id: UUID) -> JobView | None:
    """A fully published job the projector has not folded yet, as a pending job."""
    job = session.scalar(
        select(AcceptedJob).where(
            AcceptedJob.job_id == job_id,
            AcceptedJob.user_id == user_id,
            AcceptedJob.published_at.is_not(None),
        )
    )
    return None if job is None else _pending(job)


UNFOLDED_WINDOW = timedelta(hours=1)


def unfolded_views(
    session: Session, *, user_id: str, job_type: str | None, limit: int
) -> list[JobView]:
    """The user's newest published jobs the projector has not folded yet (read-your-writes
    for the first page of a jobs list), accepted within ``UNFOLDED_WINDOW``: past it, a job
    the projector has not folded is an outage, and the list shows the folded ones."""
    query = select(AcceptedJob).where(
        AcceptedJob.user_id == user_id,
        AcceptedJob.published_at.is_not(None),
        AcceptedJob.created_at > datetime.now(UTC) - UNFOLDED_WINDOW,
        ~exists().where(Job.id == AcceptedJob.job_id, Job.created_at.is_not(None)),
    )
    if job_type is not None:
        query = query.where(AcceptedJob.job_type == job_type)
    rows = session.scalars(query.order_by(AcceptedJob.created_at.desc()).limit(limit))
    return [_pending(job) for job in rows]


def _pending(job: AcceptedJob) -> JobView:
    return JobView(
        batch_job_id=job.job_id,
        job_type=job.job_type,
        priority=job.priority,
        status="pending",
        total_items=job.total_items,
        processed_items=0,
        success_items=0,
        failed_items=0,
        cancelled_items=0,
        progress_percent=0.0,
        metadata=job.job_metadata,
        created_at=job.created_at,
        started_at=None,
        completed_at=None,
        result=None,
    )
