"""The API's errors, each mapped once to an HTTP status by ``install_error_handlers``."""

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError


class ApiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.message = message
        self.details = details


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


class TooLarge(ApiError):
    status_code = 413
    code = "too_large"


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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SQLAlchemyOperationalError)
    async def _database_down(request: Request, exc: SQLAlchemyOperationalError) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"error": "database_unavailable", "detail": "try again shortly"},
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if exc.status_code == 503:
            headers = {"Retry-After": "2"}
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
        body = {"error": exc.code, "detail": exc.message, **exc.details}
        return JSONResponse(status_code=exc.status_code, content=body, headers=headers)
