"""/batch/jobs: submit a batch, list the caller's jobs, read a job, its items and its result,
cancel it."""

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID, uuid4

import orjson
from fastapi import APIRouter, Header, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from events.ids import job_id_text
from events.item_wire import SubmittedEncoder
from events.models import JobCancelRequested, JobSubmitted, JobType
from events.topics import Lane
from ingest_api import export, queries
from ingest_api.acceptance import Accepted, request_hash
from ingest_api.api_keys import user_for_key_hash
from ingest_api.deps import (
    Caller,
    CallerDep,
    CurrentUser,
    PublisherDep,
    RecordsDep,
    SessionDep,
    SettingsDep,
)
from ingest_api.errors import (
    ERROR_RESPONSES,
    IdempotencyConflict,
    InvalidBatch,
    JobAlreadyFinished,
    NothingToRetry,
    PublishFailed,
    ResultNotReady,
    TooLarge,
    UnsupportedMediaType,
)
from ingest_api.lanes import lane_for
from ingest_api.metrics import ITEMS_ACCEPTED
from ingest_api.progress import progress_events
from ingest_api.publisher import EventPublisher, EventTooLarge, Outgoing, PublishError
from ingest_api.queue_place import place_in_queue
from ingest_api.quota import Records, check_quota
from ingest_api.schemas import (
    CancelAccepted,
    ItemPage,
    JobAccepted,
    JobPage,
    JobRequest,
    JobView,
    ResultView,
)
from ingest_api.settings import ApiSettings
from ingest_api.submission import (
    CHUNK,
    callback_url_param,
    check_callback_url,
    check_metadata,
    checked_payloads,
    handler_for,
    item_messages,
    job_type_of,
    message_chunks,
    metadata_param,
    parse_request,
    retry_chunk,
    spooled_chunks,
)
from ingest_api.upload import UploadLimits, spool_ndjson
from jobtypes.contract import Handler
from storage.tables import FINAL_JOB_STATUSES

T = TypeVar("T")

router = APIRouter(prefix="/batch/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

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


NDJSON = "application/x-ndjson"
SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": JobRequest.model_json_schema()},
            NDJSON: {
                "schema": {
                    "type": "string",
                    "description": "one item (a JSON object) "
                    "per line; job_type and metadata as query parameters",
                }
            },
        },
    }
}


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted, openapi_extra=SUBMIT_BODY
)
async def submit_job(
    request: Request,
    caller: CallerDep,
    records: RecordsDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
    job_type: Annotated[str | None, Query(description="NDJSON uploads: the job type")] = None,
    metadata: Annotated[
        str | None, Query(description="NDJSON uploads: metadata, a JSON object")
    ] = None,
    priority: Annotated[
        Lane | None, Query(description="NDJSON uploads: the job's lane (see the JSON body's)")
    ] = None,
    callback_url: Annotated[
        str | None,
        Query(description="NDJSON uploads: where its JobFinished goes (see the JSON body's)"),
    ] = None,
) -> JobAccepted:
    """Submit a batch: a JSON body ``{job_type, items, metadata?, priority?}``, or a streamed NDJSON
    upload (one item per line) for large batches."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0]
    user = caller.user_id
    if content_type.strip().lower() == NDJSON:
        return await submit_ndjson(
            request.stream(),
            caller,
            records,
            publisher,
            settings,
            idempotency_key,
            job_type,
            metadata,
            priority,
            callback_url,
        )
    if content_type.strip().lower() not in ("application/json", ""):
        raise UnsupportedMediaType(f"send application/json or {NDJSON}, not {content_type}")
    upload_params = {
        "job_type": job_type,
        "metadata": metadata,
        "priority": priority,
        "callback_url": callback_url,
    }
    given = [name for name, value in upload_params.items() if value is not None]
    if given:  # not ignored: a client that sent them meant something by them
        raise InvalidBatch(
            f"{', '.join(given)} as query parameters are for NDJSON uploads: "
            "a JSON body carries them itself"
        )
    raw = await _read_limited(request, settings.api_max_body_bytes)
    handler = handler_for(job_type_of(raw))
    # A small body is cheaper to validate here than to hand to a thread and back.
    inline = len(raw) <= INLINE_BODY_BYTES
    body = await _cpu(inline, parse_request, handler, raw, settings.api_max_items_per_request)
    check_metadata(body.metadata, settings.api_max_metadata_bytes)
    check_callback_url(body.callback_url, settings)
    payloads = await _cpu(
        inline, checked_payloads, handler, body.items, settings.api_max_item_bytes
    )
    digest = request_hash(raw) if idempotency_key else None
    lane = lane_for(body.priority, len(body.items), caller, settings)
    accepted = await _accept(
        records,
        user,
        handler,
        len(body.items),
        body.metadata,
        idempotency_key,
        digest,
        lane,
        settings,
    )
    if accepted.published_at is None:  # new, or a first attempt that died mid-publish
        spooled = spooled_chunks(handler, accepted.job_id, body.items, payloads)
        chunks = message_chunks(settings.topics, handler, accepted.job_id, spooled, _lane(accepted))
        await _publish(
            records,
            publisher,
            settings,
            handler,
            user,
            accepted,
            body.metadata,
            chunks,
            callback_url=body.callback_url,
        )
    return _accepted(accepted)


async def submit_ndjson(
    stream: AsyncIterator[bytes],
    caller: Caller,
    records: Records,
    publisher: EventPublisher,
    settings: ApiSettings,
    idempotency_key: str | None,
    job_type: str | None,
    metadata_text: str | None,
    priority: Lane | None,
    callback_url: str | None = None,
) -> JobAccepted:
    """A job of the items of an NDJSON stream (an upload's body, or a file converted by the
    console), spooled and validated before anything is published."""
    user = caller.user_id
    if not job_type:
        raise InvalidBatch("an NDJSON upload names its job type: ?job_type=...")
    handler = handler_for(job_type)
    metadata = metadata_param(metadata_text)
    check_metadata(metadata, settings.api_max_metadata_bytes)
    callback_url = callback_url_param(callback_url)
    check_callback_url(callback_url, settings)
    if idempotency_key is None:  # a full queue refuses before the upload, not after it
        await check_quota(records, user, 1, settings.api_max_queued_items_per_user)
    new_id = uuid4()
    spool = await spool_ndjson(
        stream,
        handler,
        job_id=new_id,
        limits=UploadLimits(
            max_item_bytes=settings.api_max_item_bytes,
            max_items=settings.api_max_items_per_upload,
            max_bytes=settings.api_max_upload_bytes,
            idle_timeout_s=settings.api_upload_idle_timeout_s,
            timeout_s=settings.api_upload_timeout_s,
        ),
        salt=orjson.dumps(
            [job_type, metadata, priority, callback_url], option=orjson.OPT_SORT_KEYS
        ),
    )
    try:
        accepted = await _accept(
            records,
            user,
            handler,
            spool.count,
            metadata,
            idempotency_key,
            spool.digest if idempotency_key else None,
            lane_for(priority, spool.count, caller, settings),
            settings,
            job_id=new_id,
        )
        if accepted.published_at is None:
            # A retried upload keeps its first job id: its items are keyed and numbered alike.
            chunks = message_chunks(
                settings.topics, handler, accepted.job_id, spool.chunks(CHUNK), _lane(accepted)
            )
            await _publish(
                records,
                publisher,
                settings,
                handler,
                user,
                accepted,
                metadata,
                chunks,
                callback_url=callback_url,
            )
    finally:
        spool.close()
    return _accepted(accepted)


INLINE_BODY_BYTES = 16 << 10  # validated on the event loop: well under a millisecond


async def _cpu(inline: bool, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, here or (for large work) in a thread, off the event loop."""
    if inline:
        return function(*args)
    return await run_in_threadpool(function, *args)


async def _read_limited(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise TooLarge(f"the body's {length} bytes exceed the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"the body exceeds the limit of {limit} bytes")
    return bytes(body)


async def _accept(
    records: Records,
    user: str,
    handler: Handler,
    total: int,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
    digest: str | None,
    lane: Lane,
    settings: ApiSettings,
    job_id: UUID | None = None,
) -> Accepted:
    accepted = None
    if idempotency_key is not None:
        accepted = await records.recorder.find(user_id=user, idempotency_key=idempotency_key)
    if accepted is None:
        await check_quota(records, user, total, settings.api_max_queued_items_per_user)
        accepted = await records.recorder.record(
            job_id=job_id or uuid4(),
            user_id=user,
            job_type=handler.job_type,
            total_items=total,
            metadata=metadata,
            idempotency_key=idempotency_key,
            digest=digest,
            priority=lane,
        )
        records.queued.accepted(user, accepted.total_items)
    if accepted.request_hash != digest:
        raise IdempotencyConflict(
            "this Idempotency-Key was used with another request body",
            batch_job_id=str(accepted.job_id),
        )
    return accepted


async def _publish(
    records: Records,
    publisher: EventPublisher,
    settings: ApiSettings,
    handler: Handler,
    user: str,
    accepted: Accepted,
    metadata: dict[str, Any] | None,
    chunks: Iterable[list[Outgoing]] | AsyncIterator[list[Outgoing]],
    retry_of: UUID | None = None,
    callback_url: str | None = None,
) -> None:
    submitted = JobSubmitted.new(
        job_id=accepted.job_id,
        job_type=handler.job_type,
        user_id=user,
        total_items=accepted.total_items,
        metadata=metadata or {},
        retry_of=retry_of,
        priority=_lane(accepted),
        callback_url=callback_url,
    )
    # The items first, the job last: a job exists for its reader only once its
    # JobSubmitted is folded, so a publish that dies half-way leaves nothing half visible.
    try:
        if isinstance(chunks, AsyncIterator):
            async for chunk in chunks:
                await publisher.publish(chunk)
        else:
            for chunk in chunks:
                await publisher.publish(chunk)
        await publisher.publish([Outgoing(settings.topics.jobs, str(accepted.job_id), submitted)])
    except EventTooLarge as exc:  # (settings keep what is accepted within the limit)
        raise TooLarge(f"the batch could not be published: {exc}") from exc
    except PublishError as exc:
        raise PublishFailed(f"the batch could not be published, try again: {exc}") from exc
    await records.recorder.mark_published(job_id=accepted.job_id)
    ITEMS_ACCEPTED.labels(handler.job_type).inc(accepted.total_items)


def _lane(accepted: Accepted) -> Lane:
    """The lane recorded with the job (a repeated request keeps its first one)."""
    return "interactive" if accepted.priority == "interactive" else "bulk"


def _accepted(accepted: Accepted, retry_of: UUID | None = None) -> JobAccepted:
    job_id = accepted.job_id
    links = {"self": f"/batch/jobs/{job_id}", "items": f"/batch/jobs/{job_id}/items"}
    if retry_of is not None:
        links["retry_of"] = f"/batch/jobs/{retry_of}"
    return JobAccepted(
        batch_job_id=job_id, status="pending", total_items=accepted.total_items, links=links
    )


@router.get("", response_model=JobPage)
def list_jobs(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    status: JobStatus | None = None,
    job_type: Annotated[JobType | None, Query(description="only this job type")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> JobPage:
    """The caller's jobs, newest first, optionally of one status and one job type."""
    page_size = min(limit or settings.api_page_size, settings.api_max_page_size)
    return queries.list_jobs(
        session, user_id=user, status=status, cursor=cursor, limit=page_size, job_type=job_type
    )


@router.get("/{job_id}", response_model=JobView)
def get_job(job_id: UUID, user: CurrentUser, session: SessionDep) -> JobView:
    """The job's status and counts; while unfinished, also where it stands in its lane
    (``queue``: the items ahead of it and an ETA that accounts for them)."""
    job = queries.get_job(session, user_id=user, job_id=job_id)
    return job.model_copy(update={"queue": place_in_queue(session, job)})


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


@router.get(
    "/{job_id}/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}, NDJSON: {}},
            "description": "every item (or those of one status) in index order, streamed",
        }
    },
)
def export_items(
    job_id: UUID,
    user: CurrentUser,
    session: SessionDep,
    request: Request,
    format: Annotated[export.ExportFormat, Query(description="csv or jsonl")] = "jsonl",
    status: ItemStatus | None = None,
) -> StreamingResponse:
    """Download the job's items, input, output and error with each, as CSV or JSON Lines;
    any size (read and sent a page at a time)."""
    export.check_owner(session, user_id=user, job_id=job_id)
    return StreamingResponse(
        export.export_items(request.app.state.sessions, job_id, format, status),
        media_type=export.MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename(job_id, format)}"'
        },
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


@router.post("/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted)
async def retry_job(
    job_id: UUID,
    caller: CallerDep,
    session: SessionDep,
    records: RecordsDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> JobAccepted:
    """Resubmit a finished job's failed items as a new job that names the original."""
    user = caller.user_id
    original = await run_in_threadpool(queries.get_job, session, user_id=user, job_id=job_id)
    if original.status not in FINAL_JOB_STATUSES:
        raise NothingToRetry(f"job {job_id} is still {original.status}: retry it once finished")
    if not original.failed_items or original.job_type is None:
        raise NothingToRetry(f"job {job_id} has no failed items")
    handler = handler_for(original.job_type)
    lane = lane_for(None, original.failed_items, caller, settings)
    accepted = await _accept(
        records,
        user,
        handler,
        original.failed_items,
        original.metadata,
        None,
        None,
        lane,
        settings,
    )

    topic = settings.topics.items(handler.job_type, _lane(accepted))

    async def failed_chunks() -> AsyncIterator[list[Outgoing]]:
        after, index = -1, 0
        while True:  # the failed items, a chunk at a time: memory stays bounded
            chunk = await run_in_threadpool(
                queries.failed_inputs, session, job_id=job_id, after=after, limit=CHUNK
            )
            if not chunk:
                return
            encoder = SubmittedEncoder(job_id_text(accepted.job_id), handler.job_type)
            inputs = [data for _, data in chunk]
            yield item_messages(
                topic, encoder, index, retry_chunk(handler, accepted.job_id, index, inputs)
            )
            index += len(chunk)
            after = chunk[-1][0]

    await _publish(
        records,
        publisher,
        settings,
        handler,
        user,
        accepted,
        original.metadata,
        failed_chunks(),
        retry_of=job_id,
        callback_url=original.callback_url,
    )
    return _accepted(accepted, retry_of=job_id)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "progress snapshots, then a done event",
        }
    },
)
async def job_events_stream(
    job_id: UUID, caller: CallerDep, request: Request, settings: SettingsDep
) -> StreamingResponse:
    """Server-Sent Events: the job's progress (counts, percent, items/s, ETA) until it has
    finished. Every event is a full snapshot: reconnecting just continues. Streams are
    capped per API key and in all (429), last at most ``API_STREAM_MAX_S`` (then the client
    reconnects), and end once the key is revoked."""
    sessions = request.app.state.sessions
    user = caller.user_id

    def read() -> JobView:
        with sessions() as session:
            return queries.get_job(session, user_id=user, job_id=job_id)

    def key_is_valid() -> bool:
        with sessions() as session:
            return user_for_key_hash(session, key_hash=caller.key_hash) == user

    await run_in_threadpool(read)  # 404 before the stream starts
    events = progress_events(
        read,
        job_id,
        max_s=settings.api_stream_max_s,
        key_is_valid=key_is_valid,
        key_check_s=settings.api_stream_key_check_s,
    )
    return StreamingResponse(
        request.app.state.stream_slots.holding(caller.key_hash, events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
