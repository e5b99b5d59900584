"""Webhooks: a job's deliveries (and sending them again), and the caller's default callback
URL and signing secret."""

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict

from events.callback_urls import CallbackUrl, CallbackUrlRefused
from ingest_api import queries
from ingest_api.deps import CurrentUser, SessionDep, SettingsDep
from ingest_api.errors import ERROR_RESPONSES, InvalidCallbackUrl, NothingToRedeliver
from storage import webhooks

router = APIRouter(prefix="/batch", tags=["webhooks"], responses=ERROR_RESPONSES)

KEEP_PREVIOUS_SECRET = timedelta(hours=24)


class AttemptView(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    outcome: str
    error: str | None
    next_attempt_at: datetime | None


class DeliveryView(BaseModel):
    webhook_id: UUID
    url: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    retry_until: datetime
    last_error: str | None
    attempt_log: list[AttemptView]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView]


class Redelivered(BaseModel):
    redelivered: int


class WebhookSettings(BaseModel):
    url: str | None
    secret: str
    previous_secret_valid_until: datetime | None = None


class WebhookUrl(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: CallbackUrl


@router.get("/jobs/{job_id}/deliveries", response_model=DeliveryList)
def list_deliveries(job_id: UUID, user: CurrentUser, session: SessionDep) -> Any:
    """The deliveries of the job's JobFinished webhook: each attempt's time, status code,
    latency and error, and when the next one is due."""
    queries.get_job(session, user_id=user, job_id=job_id)
    return {"deliveries": webhooks.deliveries_of(session, job_id)}


@router.post(
    "/jobs/{job_id}/deliveries/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Redelivered,
)
def redeliver(
    job_id: UUID, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> Redelivered:
    """Send the job's webhook again now, with the same webhook-id (receivers de-duplicate
    by it), retried as a new delivery would be."""
    queries.get_job(session, user_id=user, job_id=job_id)
    count = webhooks.redeliver(session, job_id, timedelta(seconds=settings.webhook_retry_window_s))
    if not count:
        raise NothingToRedeliver(f"job {job_id} has no webhook delivery (yet)")
    return Redelivered(redelivered=count)


def _settings_of(session: Any, user: str) -> WebhookSettings:
    secrets = webhooks.secrets_of(session, user)
    return WebhookSettings(
        url=webhooks.endpoint_of(session, user),
        secret=secrets.current,
        previous_secret_valid_until=secrets.previous_until if secrets.previous else None,
    )


@router.get("/webhook", response_model=WebhookSettings)
def get_webhook(user: CurrentUser, session: SessionDep) -> WebhookSettings:
    """The caller's default callback URL (for jobs submitted without one) and the secret
    their webhooks are signed with (made at the first request)."""
    return _settings_of(session, user)


@router.put("/webhook", response_model=WebhookSettings)
def set_webhook(
    body: WebhookUrl, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> WebhookSettings:
    """Set the caller's default callback URL (422 for one that can never be called)."""
    try:
        settings.callback_policy.check(body.url)
    except CallbackUrlRefused as exc:
        raise InvalidCallbackUrl(f"url: {exc}") from None
    webhooks.set_endpoint(session, user, body.url)
    return _settings_of(session, user)


@router.delete("/webhook", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(user: CurrentUser, session: SessionDep) -> Response:
    """Remove the caller's default callback URL (jobs with their own still get theirs)."""
    webhooks.set_endpoint(session, user, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/webhook/rotate-secret", response_model=WebhookSettings)
def rotate_secret(user: CurrentUser, session: SessionDep) -> WebhookSettings:
    """A new signing secret; for 24 hours the previous one also signs (both signatures are
    sent), so receivers can switch without losing a webhook."""
    webhooks.rotate_secret(session, user, KEEP_PREVIOUS_SECRET)
    return _settings_of(session, user)
