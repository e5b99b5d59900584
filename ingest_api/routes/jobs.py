"""/batch/jobs: submit a batch, list the caller's jobs, read a job, its items and its result,
cancel it."""

from typing import Annotated, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Header, Query, status
from fastapi.concurrency import run_in_threadpool

from events.models import JobCancelRequested, JobSubmitted
from ingest_api import acceptance, queries
from ingest_api.acceptance import request_hash
from ingest_api.deps import CurrentUser, PublisherDep, SessionDep, SettingsDep
from ingest_api.errors import (
    IdempotencyConflict,
    JobAlreadyFinished,
    NothingToRetry,
    PublishFailed,
    ResultNotReady,
)
from ingest_api.publisher import Outgoing, PublishError
from ingest_api.schemas import (
    CancelAccepted,
    ItemPage,
    JobAccepted,
    JobPage,
    JobRequest,
    JobView,
    ResultView,
)
from ingest_api.submission import handler_for, job_events, retry_item, validate_items
from storage.tables import FINAL_JOB_STATUSES

router = APIRouter(prefix="/batch/jobs", tags=["jobs"])

ItemStatus = Literal["pending", "success", "failed", "cancelled"]
JobStatus = Literal["pending", "processing", "completed", "cancelled", "failed"]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="the same key with the same body returns the same job",
    ),
]


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def submit_job(
    body: JobRequest,
    user: CurrentUser,
    session: SessionDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    handler = handler_for(body.job_type)
    items = await run_in_threadpool(
        validate_items, handler, body.items, settings.api_max_items_per_request
    )
    digest = None
    accepted = None
    if idempotency_key is not None:
        digest = request_hash(body.job_type, body.items, body.metadata)
        accepted = await run_in_threadpool(
            acceptance.find, session, user_id=user, idempotency_key=idempotency_key
        )
    if accepted is None:
        accepted = await run_in_threadpool(
            acceptance.record,
            session,
            job_id=uuid4(),
            user_id=user,
            job_type=handler.job_type,
            total_items=len(items),
            metadata=body.metadata,
            idempotency_key=idempotency_key,
            digest=digest,
        )
    if accepted.request_hash != digest:
        raise IdempotencyConflict(
            "this Idempotency-Key was used with another request body",
            batch_job_id=str(accepted.job_id),
        )
    if accepted.published_at is None:  # new, or a first attempt that died mid-publish
        _, outgoing = job_events(
            topics=settings.topics,
            handler=handler,
            user_id=user,
            items=items,
            metadata=body.metadata,
            job_id=accepted.job_id,
        )
        try:
            await publisher.publish(outgoing)
        except PublishError as exc:
            raise PublishFailed(f"the batch could not be published, try again: {exc}") from exc
        await run_in_threadpool(acceptance.mark_published, session, job_id=accepted.job_id)
    job_id = accepted.job_id
    return JobAccepted(
        batch_job_id=job_id,
        status="pending",
        total_items=accepted.total_items,
        links={"self": f"/batch/jobs/{job_id}", "items": f"/batch/jobs/{job_id}/items"},
    )


@router.get("", response_model=JobPage)
def list_jobs(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    status: JobStatus | None = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> JobPage:
    page_size = min(limit or settings.api_page_size, settings.api_max_page_size)
    return queries.list_jobs(session, user_id=user, status=status, cursor=cursor, limit=page_size)


@router.get("/{job_id}", response_model=JobView)
def get_job(job_id: UUID, user: CurrentUser, session: SessionDep) -> JobView:
    return queries.get_job(session, user_id=user, job_id=job_id)


@router.get("/{job_id}/items", response_model=ItemPage)
def list_items(
    job_id: UUID,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    cursor: Annotated[
        int | None, Query(ge=-1, description="next_cursor of the previous page")
    ] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    status: ItemStatus | None = None,
) -> ItemPage:
    page_size = min(limit or settings.api_page_size, settings.api_max_page_size)
    return queries.list_items(
        session, user_id=user, job_id=job_id, after=cursor, limit=page_size, status=status
    )


@router.get("/{job_id}/result", response_model=ResultView)
def get_result(job_id: UUID, user: CurrentUser, session: SessionDep) -> ResultView:
    job = queries.get_job(session, user_id=user, job_id=job_id)
    if job.result is None:
        raise ResultNotReady(job_id, job.status)
    return job.result


@router.post(
    "/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=CancelAccepted
)
async def cancel_job(
    job_id: UUID,
    user: CurrentUser,
    session: SessionDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> CancelAccepted:
    """Ask the workers to skip the job's remaining items; they end ``cancelled``."""
    job = await run_in_threadpool(queries.get_job, session, user_id=user, job_id=job_id)
    if job.status in FINAL_JOB_STATUSES:
        raise JobAlreadyFinished(job_id, job.status)
    event = JobCancelRequested.new(job_id=job_id, user_id=user)
    try:
        await publisher.publish([Outgoing(settings.topics.jobs, str(job_id), event)])
    except PublishError as exc:
        raise PublishFailed(f"the cancellation could not be published, try again: {exc}") from exc
    return CancelAccepted(batch_job_id=job_id, status="cancelling")


RETRY_CHUNK = 5_000


@router.post("/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def retry_job(
    job_id: UUID,
    user: CurrentUser,
    session: SessionDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> JobAccepted:
    """Resubmit a finished job's failed items as a new job that names the original."""
    original = await run_in_threadpool(queries.get_job, session, user_id=user, job_id=job_id)
    if original.status not in FINAL_JOB_STATUSES:
        raise NothingToRetry(f"job {job_id} is still {original.status}: retry it once finished")
    if not original.failed_items or original.job_type is None:
        raise NothingToRetry(f"job {job_id} has no failed items")
    handler = handler_for(original.job_type)
    new_id = uuid4()
    accepted = await run_in_threadpool(
        acceptance.record,
        session,
        job_id=new_id,
        user_id=user,
        job_type=handler.job_type,
        total_items=original.failed_items,
        metadata=original.metadata,
        idempotency_key=None,
        digest=None,
    )
    submitted = JobSubmitted.new(
        job_id=new_id,
        job_type=handler.job_type,
        user_id=user,
        total_items=original.failed_items,
        metadata=original.metadata or {},
        retry_of=job_id,
    )
    try:
        await publisher.publish([Outgoing(settings.topics.jobs, str(new_id), submitted)])
        after, index = -1, 0
        while True:  # the failed items, a chunk at a time: memory stays bounded
            chunk = await run_in_threadpool(
                queries.failed_inputs, session, job_id=job_id, after=after, limit=RETRY_CHUNK
            )
            if not chunk:
                break
            outgoing = []
            for _, data in chunk:
                outgoing.append(retry_item(handler, settings.topics, new_id, index, data))
                index += 1
            await publisher.publish(outgoing)
            after = chunk[-1][0]
    except PublishError as exc:
        raise PublishFailed(f"the retry could not be published, try again: {exc}") from exc
    await run_in_threadpool(acceptance.mark_published, session, job_id=accepted.job_id)
    return JobAccepted(
        batch_job_id=new_id,
        status="pending",
        total_items=index,
        links={
            "self": f"/batch/jobs/{new_id}",
            "items": f"/batch/jobs/{new_id}/items",
            "retry_of": f"/batch/jobs/{job_id}",
        },
    )
