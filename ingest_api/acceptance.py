"""The API's record of accepted jobs: idempotent submission and read-your-writes.

A job is recorded before its events are published and marked published once Kafka has
acknowledged all of them. A repeated request with the same Idempotency-Key (from the same
user) gets the same job: if the first attempt died half-way through publishing, the same
deterministic events are published again, which changes nothing downstream.
"""

import functools
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from pydantic_core import from_json
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ingest_api.coalescer import Coalescer
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
SELECT job_id, user_id, job_type, total_items, priority, metadata::jsonb, idempotency_key,
       request_hash
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[],
            $8::text[])
    AS new (job_id, user_id, job_type, total_items, priority, metadata, idempotency_key,
            request_hash)
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
WHERE job_id = ANY($1::uuid[]) AND published_at IS NULL
"""


class NewJob(NamedTuple):
    job_id: UUID
    user_id: str
    job_type: str
    total_items: int
    priority: str
    metadata: dict[str, Any] | None
    idempotency_key: str | None
    digest: str | None


async def find(statements: Statements, *, user_id: str, idempotency_key: str) -> Accepted | None:
    row = await statements.fetchrow(_FIND, user_id, idempotency_key)
    return None if row is None else Accepted(*row)


async def record_all(statements: Statements, jobs: Sequence[NewJob]) -> list[Accepted]:
    """Record new jobs (one statement; its commit waits for the disk). A job whose user's
    Idempotency-Key is taken (a race between two requests with it) gets the job that has
    it."""
    columns = list(zip(*jobs, strict=True))
    metadata = [None if m is None else orjson.dumps(m).decode() for m in columns[5]]
    rows = await statements.fetch(_RECORD, *columns[:5], metadata, *columns[6:])
    recorded = {row[0]: Accepted(*row) for row in rows}
    answers = []
    for job in jobs:
        accepted = recorded.get(job.job_id)
        if accepted is None:
            assert job.idempotency_key is not None  # (a new job id conflicts with nothing)
            accepted = await find(
                statements, user_id=job.user_id, idempotency_key=job.idempotency_key
            )
            assert accepted is not None
        answers.append(accepted)
    return answers


async def mark_all_published(statements: Statements, job_ids: Sequence[UUID]) -> list[None]:
    await statements.execute(_MARK_PUBLISHED, list(job_ids))
    return [None] * len(job_ids)


class Recorder:
    """Records accepted jobs and marks them published, many requests' jobs to a statement
    (``ingest_api.coalescer``)."""

    def __init__(self, statements: Statements):
        self.statements = statements
        self._record: Coalescer[NewJob, Accepted] = Coalescer(
            functools.partial(record_all, statements)
        )
        self._mark: Coalescer[UUID, None] = Coalescer(
            functools.partial(mark_all_published, statements)
        )

    async def find(self, *, user_id: str, idempotency_key: str) -> Accepted | None:
        return await find(self.statements, user_id=user_id, idempotency_key=idempotency_key)

    async def record(
        self,
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
        """Record a new job; when the user's Idempotency-Key is taken, the job that has it."""
        job = NewJob(
            job_id, user_id, job_type, total_items, priority, metadata, idempotency_key, digest
        )
        return await self._record(job)

    async def mark_published(self, *, job_id: UUID) -> None:
        await self._mark(job_id)


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
