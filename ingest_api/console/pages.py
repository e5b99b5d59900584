"""The web console under ``/ui``: server-rendered pages over the same tables and the same
operations as the REST API, signed in with an API key (``console.sessions``)."""

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import quote
from uuid import UUID

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import func, select

from events.models import JobType
from events.topics import Lane
from ingest_api import export, queries
from ingest_api.console import throughput
from ingest_api.console.auth import (
    COOKIE,
    CSRF_FIELD,
    SIGN_IN_COOKIE,
    CheckedDep,
    OperatorDep,
    OperatorsOnly,
    SignedInDep,
    caller_of,
    form_fields,
)
from ingest_api.console.file_formats import FileFormat, csv_as_ndjson, json_as_ndjson
from ingest_api.console.sessions import close_session, open_session, signed_in
from ingest_api.deps import PublisherDep, RecordsDep, SessionDep, SettingsDep
from ingest_api.errors import ApiError
from ingest_api.progress import progress_of_jobs, snapshot
from ingest_api.queue_place import place_in_queue
from ingest_api.routes import jobs as job_routes
from ingest_api.schemas import JobAccepted, JobView
from jobtypes.registry import job_types
from storage.tables import FINAL_JOB_STATUSES, ProjectionCheckpoint
from streaming.groups import inspect_groups
from streaming.letters import CannotRedrive, read_letters, redrive, target_topic

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

JOB_STATUSES = get_args(job_routes.JobStatus)
ITEM_STATUSES = get_args(job_routes.ItemStatus)
AnyJobStatus = job_routes.JobStatus | Literal[""]  # "": a filter form's "any"
AnyItemStatus = job_routes.ItemStatus | Literal[""]
PAGE_SIZE = 25
ITEMS_PAGE_SIZE = 50
MAX_STREAMED_JOBS = 100
NEWEST_LETTERS = 5000  # per partition, read for the operator page
GROUP_STATES = {  # Kafka's group states, as the operator page says them (label, tone)
    "Stable": ("running", "completed"),
    "Empty": ("stopped: positions kept", "pending"),
    "Dead": ("not started", "failed"),
    "PreparingRebalance": ("rebalancing", "processing"),
    "CompletingRebalance": ("rebalancing", "processing"),
}


def _page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    return response


# The pages load only the console's own assets, and no other site may frame them.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def error_page(request: Request, exc: ApiError) -> Response:
    """An error of a console page as a page (``errors.install_error_handlers`` asks for it
    when a browser, not a script, made the request)."""
    if exc.status_code == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/sign-in?next={_quote(target)}", status_code=303)
    return _page(
        request,
        "error.html",
        {"status": exc.status_code, "code": exc.code, "message": exc.message},
        exc.status_code,
    )


def _quote(path: str) -> str:
    return quote(path, safe="")


def _local(next_path: str | None) -> str:
    """Where to go after signing in: a console path only (no open redirect)."""
    if next_path and next_path.startswith("/ui/") and not next_path.startswith("/ui//"):
        return next_path if "\\" not in next_path else "/ui/jobs"
    return "/ui/jobs"


def _cookie_options(request: Request) -> dict[str, Any]:
    """HttpOnly, SameSite=Strict, only for the console's paths, and Secure over TLS (behind
    a proxy that ends TLS: run uvicorn with --proxy-headers so the scheme is seen)."""
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": "/ui",
    }


@router.get("")
@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/sign-in")
def sign_in_page(
    request: Request, next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    token = secrets.token_urlsafe(32)
    response = _page(request, "sign_in.html", {"csrf_token": token, "next": _local(next)})
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=3600, **_cookie_options(request))
    return response


@router.post("/sign-in")
async def sign_in(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    fields = await form_fields(request)
    expected = request.cookies.get(SIGN_IN_COOKIE)
    if not expected or not secrets.compare_digest(
        fields.get(CSRF_FIELD, "").encode(), expected.encode()
    ):
        return _page(
            request,
            "error.html",
            {
                "status": 403,
                "code": "csrf_refused",
                "message": "the sign-in form's CSRF token is missing or wrong: reload the page",
            },
            403,
        )
    api_key = fields.get("api_key", "").strip()
    token = None
    if 0 < len(api_key) <= 256:
        lifetime = timedelta(seconds=settings.api_console_session_s)
        token = await run_in_threadpool(open_session, session, api_key=api_key, lifetime=lifetime)
    if token is None:
        return _page(
            request,
            "sign_in.html",
            {
                "csrf_token": expected,
                "next": _local(fields.get("next")),
                "error": "That API key is not valid, or was revoked.",
            },
            401,
        )
    response = RedirectResponse(_local(fields.get("next")), status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(settings.api_console_session_s),
        **_cookie_options(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/ui")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, user: CheckedDep, session: SessionDep) -> Response:
    token = request.cookies.get(COOKIE, "")
    await run_in_threadpool(close_session, session, token=token)
    response = RedirectResponse("/ui/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# --- jobs --------------------------------------------------------------------------------


def _live(job: JobView, now: datetime) -> dict[str, Any]:
    """What the page shows of a job's progress before its stream moves it (the same figures
    as the stream's snapshots)."""
    state = snapshot(job, now)
    return {
        "items_per_s": state["items_per_s"],
        "eta_s": state["eta_s"],
        "finished": job.status in FINAL_JOB_STATUSES,
    }


@router.get("/jobs")
def jobs_page(
    request: Request,
    user: SignedInDep,
    session: SessionDep,
    status: AnyJobStatus = "",
    job_type: Annotated[JobType | Literal[""], Query()] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    page = queries.list_jobs(
        session,
        user_id=user.user_id,
        status=status or None,
        job_type=job_type or None,
        cursor=cursor,
        limit=PAGE_SIZE,
    )
    now = datetime.now(UTC)
    return _page(
        request,
        "jobs.html",
        {
            "user": user,
            "jobs": [(job, _live(job, now)) for job in page.jobs],
            "next_cursor": page.next_cursor,
            "status": status,
            "job_type": job_type,
            "statuses": JOB_STATUSES,
            "job_types": sorted(job_types()),
            "unfinished": [
                str(job.batch_job_id) for job in page.jobs if job.status not in FINAL_JOB_STATUSES
            ],
        },
    )


@router.get("/jobs/{job_id}")
def job_page(
    request: Request,
    job_id: UUID,
    user: SignedInDep,
    session: SessionDep,
    items_status: AnyItemStatus = "",
    cursor: Annotated[int | None, Query(ge=-1)] = None,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    job = queries.get_job(session, user_id=user.user_id, job_id=job_id)
    queue = place_in_queue(session, job)
    items = queries.list_items(
        session,
        user_id=user.user_id,
        job_id=job_id,
        after=cursor,
        limit=ITEMS_PAGE_SIZE,
        status=items_status or None,
    )
    return _page(
        request,
        "job.html",
        {
            "user": user,
            "job": job,
            "live": _live(job, datetime.now(UTC)),
            "queue": queue,
            "items": items,
            "items_status": items_status,
            "item_statuses": ITEM_STATUSES,
            "top_errors": _top_errors(job),
            "notice": NOTICES.get(notice or ""),
            "pretty": _pretty,
            "cursor": cursor,
        },
    )


NOTICES = {
    "cancelling": "Cancellation requested: the remaining items end cancelled.",
    "retry": "This job retries the failed items of the job it names.",
}


def _top_errors(job: JobView) -> list[tuple[str, int]]:
    """The result summary's top error codes (the projector keeps the five commonest)."""
    if job.result is None:
        return []
    top = job.result.result_summary.get("top_errors")
    if not isinstance(top, list):
        return []
    return [
        (str(entry.get("code")), int(entry.get("count") or 0))
        for entry in top
        if isinstance(entry, dict)
    ]


def _pretty(data: Any) -> str:
    """JSON for people: on one line when it is short, indented when it is not."""
    if data is None:
        return ""
    compact = orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()
    if len(compact) <= 60:
        return compact
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


@router.get("/jobs/{job_id}/throughput.svg")
def throughput_chart(
    request: Request, job_id: UUID, user: SignedInDep, session: SessionDep
) -> Response:
    job = queries.get_job(session, user_id=user.user_id, job_id=job_id)
    session.rollback()
    cache: dict[UUID, str] = request.app.state.console_charts
    drawn = cache.get(job_id)
    if drawn is None:
        chart = throughput.throughput(
            session,
            job_id=job_id,
            started_at=job.started_at,
            until=job.completed_at if job.status in FINAL_JOB_STATUSES else None,
        )
        drawn = throughput.svg(chart) if chart else throughput.EMPTY_SVG
        if job.status in FINAL_JOB_STATUSES and chart is not None:  # it no longer changes
            if len(cache) >= 256:
                cache.pop(next(iter(cache)))
            cache[job_id] = drawn
    return Response(
        drawn, media_type="image/svg+xml", headers={"Cache-Control": "private, no-cache"}
    )


@router.get("/jobs/{job_id}/download")
def download(
    request: Request,
    job_id: UUID,
    user: SignedInDep,
    session: SessionDep,
    format: export.ExportFormat = "csv",
    items_status: AnyItemStatus = "",
) -> StreamingResponse:
    return job_routes.export_items(
        job_id, user.user_id, session, request, format, items_status or None
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel(
    job_id: UUID,
    user: CheckedDep,
    session: SessionDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> RedirectResponse:
    await job_routes.cancel_job(job_id, user.user_id, session, publisher, settings)
    return RedirectResponse(f"/ui/jobs/{job_id}?notice=cancelling", status_code=303)


@router.post("/jobs/{job_id}/retry")
async def retry(
    job_id: UUID,
    user: CheckedDep,
    session: SessionDep,
    records: RecordsDep,
    publisher: PublisherDep,
    settings: SettingsDep,
) -> RedirectResponse:
    accepted = await job_routes.retry_job(
        job_id, caller_of(user), session, records, publisher, settings
    )
    return RedirectResponse(f"/ui/jobs/{accepted.batch_job_id}?notice=retry", status_code=303)


@router.get("/events")
async def progress_stream(
    request: Request,
    user: SignedInDep,
    settings: SettingsDep,
    job: Annotated[list[UUID], Query(max_length=MAX_STREAMED_JOBS)],
) -> StreamingResponse:
    """Server-Sent Events: the progress of the listed jobs (the caller's: others are never
    read), until all have finished; held to the same caps as the API's streams."""
    sessions = request.app.state.sessions
    token = request.cookies.get(COOKIE, "")

    def read(ids: list[UUID]) -> list[JobView]:
        with sessions() as session:
            return queries.get_jobs(session, user_id=user.user_id, job_ids=ids)

    def still_signed_in() -> bool:
        with sessions() as session:
            return signed_in(session, token=token) is not None

    events = progress_of_jobs(
        read,
        job,
        max_s=settings.api_stream_max_s,
        key_is_valid=still_signed_in,
        key_check_s=settings.api_stream_key_check_s,
    )
    return StreamingResponse(
        request.app.state.stream_slots.holding(user.key_hash, events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- submit -------------------------------------------------------------------------------


@router.get("/submit")
def submit_page(request: Request, user: SignedInDep, settings: SettingsDep) -> Response:
    return _page(
        request,
        "submit.html",
        {
            "user": user,
            "job_types": sorted(job_types()),
            "max_upload_bytes": settings.api_max_upload_bytes,
            "max_json_bytes": settings.api_max_body_bytes,
        },
    )


@router.post("/submit", response_model=JobAccepted, status_code=202)
async def submit(
    request: Request,
    user: CheckedDep,
    records: RecordsDep,
    publisher: PublisherDep,
    settings: SettingsDep,
    job_type: Annotated[str, Query(min_length=1, max_length=64)],
    file_format: Annotated[FileFormat, Query(alias="format")],
    priority: Lane | None = None,
) -> JobAccepted:
    """A file's items as a new job (the page's script sends the file as the body)."""
    stream: AsyncIterator[bytes] = request.stream()
    if file_format == "csv":
        stream = csv_as_ndjson(stream, settings.api_max_item_bytes)
    elif file_format == "json":
        stream = json_as_ndjson(stream, settings.api_max_body_bytes)
    return await job_routes.submit_ndjson(
        stream,
        caller_of(user),
        records,
        publisher,
        settings,
        None,
        job_type,
        None,
        priority,
    )


# --- operators ----------------------------------------------------------------------------


@router.get("/operator")
async def operator_page(
    request: Request,
    user: OperatorDep,
    settings: SettingsDep,
    notice: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    topics = settings.topics
    kinds = sorted(job_types())
    projector = topics.projector_group()
    groups: dict[str, list[str]] = {
        topics.worker_group(kind): list(topics.items_of_every_lane(kind)) for kind in kinds
    }
    groups[projector] = [
        topics.jobs,
        *topics.all_outcomes(),
        *(topic for kind in kinds for topic in topics.items_of_every_lane(kind)),
    ]
    positions = await run_in_threadpool(_projector_positions, request)
    problems: list[str] = []
    try:
        reports = await inspect_groups(settings, groups, {projector: positions})
    except Exception as exc:  # Kafka unreachable: the page says so, with what it knows
        reports, problems = [], [f"Kafka did not answer: {type(exc).__name__}"]
    try:
        letters = await asyncio.wait_for(read_letters(settings, newest=NEWEST_LETTERS), 15)
    except Exception as exc:
        letters, problems = [], [*problems, f"the dead letters were not read: {type(exc).__name__}"]
    reasons = Counter(letter.reason or "(none)" for letter in letters)
    return _page(
        request,
        "operator.html",
        {
            "user": user,
            "reports": reports,
            "projector": projector,
            "checkpoint_age_s": await run_in_threadpool(_checkpoint_age_s, request),
            "reasons": reasons.most_common(),
            "letters": list(reversed(letters[-20:])),
            "letters_read": len(letters),
            "newest_letters": NEWEST_LETTERS,
            "problems": problems,
            "notice": notice,
            "STATES": GROUP_STATES,
        },
    )


def _projector_positions(request: Request) -> dict[tuple[str, int], int]:
    with request.app.state.sessions() as session:
        rows = session.execute(
            select(
                ProjectionCheckpoint.topic,
                ProjectionCheckpoint.partition,
                ProjectionCheckpoint.next_offset,
            ).where(ProjectionCheckpoint.projection == "main")
        ).all()
    return {(topic, partition): offset for topic, partition, offset in rows}


def _checkpoint_age_s(request: Request) -> float | None:
    """Seconds since the projector last stored a position (None: never)."""
    with request.app.state.sessions() as session:
        last = session.scalar(
            select(func.max(ProjectionCheckpoint.updated_at)).where(
                ProjectionCheckpoint.projection == "main"
            )
        )
    return None if last is None else (datetime.now(UTC) - last).total_seconds()


@router.post("/operator/redrive")
async def redrive_letters(
    request: Request, user: CheckedDep, settings: SettingsDep
) -> RedirectResponse:
    if not user.operator:
        raise OperatorsOnly("this is for operators' keys (batchctl keys create --operator)")
    reason = (await form_fields(request)).get("reason", "")
    letters = await read_letters(settings, newest=NEWEST_LETTERS)
    chosen, skipped = [], 0
    for letter in letters:
        if (letter.reason or "(none)") != reason:
            continue
        try:
            target_topic(settings, letter)
        except CannotRedrive:
            skipped += 1
            continue
        chosen.append(letter)
    done = await redrive(settings, chosen) if chosen else []
    message = f"redrove {len(done)} letters of reason {reason!r}" + (
        f"; {skipped} belong on no topic of this deployment and stay" if skipped else ""
    )
    return RedirectResponse(f"/ui/operator?notice={_quote(message[:200])}", status_code=303)
