"""The API's errors, each mapped once to an HTTP status by ``install_error_handlers``."""

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class ErrorBody(BaseModel):
    """Every error response: a stable code, a message for people, and details by error
    (``invalid_items``, ``known_job_types``, ``errors`` ...)."""

    model_config = ConfigDict(extra="allow")

    error: str
    detail: str


def _documented(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# The error responses of the job endpoints, in the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _documented("no valid API key"),
    403: _documented("the key may not send a job this large to the interactive lane"),
    404: _documented("no such job, or not yours"),
    408: _documented("an upload too slow: idle or in all past its time limits"),
    409: _documented("the job's state does not allow it"),
    413: _documented("over a size limit"),
    415: _documented("not JSON or NDJSON"),
    422: _documented("the request or its items are invalid"),
    429: _documented("over the key's rate limit, or the user's queue is full; see Retry-After"),
    503: _documented("Kafka or PostgreSQL unavailable; see Retry-After"),
}


class ApiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.message = message
        self.details = details


class InteractiveNotAllowed(ApiError):
    status_code = 403
    code = "interactive_not_allowed"


class NotAuthenticated(ApiError):
    status_code = 401
    code = "not_authenticated"


class JobNotFound(ApiError):
    status_code = 404
    code = "job_not_found"

    def __init__(self, job_id: object):
        super().__init__(f"job {job_id} not found")


class JobAlreadyFinished(ApiError):
    status_code = 409
    code = "job_finished"

    def __init__(self, job_id: object, status: str):
        super().__init__(f"job {job_id} is already {status}")


class NothingToRetry(ApiError):
    status_code = 409
    code = "nothing_to_retry"


class ResultNotReady(ApiError):
    status_code = 409
    code = "result_not_ready"

    def __init__(self, job_id: object, status: str):
        super().__init__(f"job {job_id} is {status}: its result exists once it has finished")


class IdempotencyConflict(ApiError):
    status_code = 409
    code = "idempotency_conflict"


class InvalidCursor(ApiError):
    status_code = 422
    code = "invalid_cursor"


class InvalidBatch(ApiError):
    status_code = 422
    code = "invalid_batch"


class InvalidCallbackUrl(ApiError):
    status_code = 422
    code = "invalid_callback_url"


class NothingToRedeliver(ApiError):
    status_code = 409
    code = "nothing_to_redeliver"


class TooLarge(ApiError):
    status_code = 413
    code = "too_large"


class UploadTimedOut(ApiError):
    status_code = 408
    code = "upload_timed_out"


class TooManyStreams(ApiError):
    status_code = 429
    code = "too_many_streams"

    def __init__(self, message: str, retry_after_s: float = 5.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFull(ApiError):
    status_code = 429
    code = "queue_full"
    retry_after_s = 30.0


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(ApiError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: float):
        super().__init__(f"too many requests for this API key; retry in {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


class PublishFailed(ApiError):
    status_code = 503
    code = "publish_failed"


class DatabaseUnavailable(ApiError):
    status_code = 503
    code = "database_unavailable"


def _first_problem(errors: list[dict[str, Any]]) -> str:
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "request"
    return f"{where}: {first.get('msg', 'invalid')}"


def _wants_a_page(request: Request) -> bool:
    """A browser's request of a console page (its scripts ask for JSON)."""
    return request.url.path.startswith("/ui/") and "text/html" in request.headers.get("accept", "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Not the offending input back: it can be megabytes, or NaN (not JSON at all).
        errors = jsonable_encoder(
            [{k: v for k, v in e.items() if k not in ("input", "ctx", "url")} for e in exc.errors()]
        )
        return JSONResponse(
            status_code=422,
            content={
                "error": "invalid_request",
                "detail": _first_problem(errors),
                "errors": errors,
            },
        )

    # PostgreSQL away, or every connection of the process's pool in use for ``pool_timeout``
    # seconds: try again shortly
    database_codes = {
        SQLAlchemyOperationalError: "database_unavailable",
        PoolTimeout: "database_busy",
    }

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        code = next(c for kind, c in database_codes.items() if isinstance(exc, kind))
        return JSONResponse(
            status_code=503,
            content={"error": code, "detail": "try again shortly"},
            headers={"Retry-After": "2"},
        )

    for kind in database_codes:
        app.add_exception_handler(kind, _database)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        page = getattr(request.app.state, "html_error_page", None)
        if page is not None and _wants_a_page(request):
            return page(request, exc)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if exc.status_code == 503:
            headers = {"Retry-After": "2"}
        if isinstance(exc, RateLimited | TooManyStreams | QueueFull):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
        body = {"error": exc.code, "detail": exc.message, **exc.details}
        return JSONResponse(status_code=exc.status_code, content=body, headers=headers)
