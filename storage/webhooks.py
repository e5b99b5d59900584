"""Webhook endpoints, signing secrets and deliveries: the queries the API, ``batchctl`` and
the notifier share."""

import base64
import secrets as random_secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from storage.tables import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookSecret

SECRET_PREFIX = "whsec_"


def _now(session: Session) -> datetime:
    now = session.scalar(select(func.now()))
    assert now is not None
    return now


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(32)).decode()


# --- endpoints -----------------------------------------------------------------------------


def set_endpoint(session: Session, user_id: str, url: str | None) -> None:
    """Set (or with None, remove) a user's default callback URL."""
    if url is None:
        session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.user_id == user_id))
    else:
        statement = insert(WebhookEndpoint).values(user_id=user_id, url=url)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[WebhookEndpoint.user_id],
                set_={"url": statement.excluded.url, "updated_at": func.now()},
            )
        )
    session.commit()


def endpoint_of(session: Session, user_id: str) -> str | None:
    return session.scalar(select(WebhookEndpoint.url).where(WebhookEndpoint.user_id == user_id))


def list_endpoints(session: Session, user_id: str | None = None) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.user_id)
    if user_id is not None:
        query = query.where(WebhookEndpoint.user_id == user_id)
    return list(session.scalars(query))


# --- secrets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningSecrets:
    """The secret that signs, and during a rotation the previous one (which also signs
    until ``previous_until``)."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def signing(self, now: datetime) -> list[str]:
        keys = [self.current]
        if self.previous and self.previous_until and now < self.previous_until:
            keys.append(self.previous)
        return keys


def secrets_of(session: Session, user_id: str) -> SigningSecrets:
    """A user's secrets, the first one made now if the user has none."""
    session.execute(
        insert(WebhookSecret)
        .values(user_id=user_id, secret=new_secret())
        .on_conflict_do_nothing(index_elements=[WebhookSecret.user_id])
    )
    row = session.execute(
        select(WebhookSecret).where(WebhookSecret.user_id == user_id)
    ).scalar_one()
    session.commit()
    return SigningSecrets(row.secret, row.previous_secret, row.previous_until)


def rotate_secret(session: Session, user_id: str, keep_previous: timedelta) -> SigningSecrets:
    """A new secret; the one it replaces keeps signing (beside it) for ``keep_previous``."""
    secrets_of(session, user_id)
    row = session.execute(
        select(WebhookSecret).where(WebhookSecret.user_id == user_id).with_for_update()
    ).scalar_one()
    row.previous_secret = row.secret
    row.previous_until = _now(session) + keep_previous
    row.secret = new_secret()
    session.commit()
    return SigningSecrets(row.secret, row.previous_secret, row.previous_until)


# --- deliveries ----------------------------------------------------------------------------


def deliveries_of(session: Session, job_id: UUID) -> list[dict[str, Any]]:
    """A job's deliveries, each with its attempts (oldest first)."""
    deliveries = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .order_by(WebhookDelivery.created_at)
    ).all()
    attempts: dict[UUID, list[WebhookAttempt]] = {}
    if deliveries:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id.in_([d.event_id for d in deliveries]))
            .order_by(WebhookAttempt.id)
        ):
            attempts.setdefault(attempt.event_id, []).append(attempt)
    return [
        {
            "webhook_id": str(d.event_id),
            "url": d.url,
            "status": d.status,
            "attempts": d.attempts,
            "created_at": d.created_at,
            "next_attempt_at": d.next_attempt_at if d.status == "pending" else None,
            "delivered_at": d.delivered_at,
            "retry_until": d.retry_until,
            "last_error": d.last_error,
            "attempt_log": [
                {
                    "attempted_at": a.attempted_at,
                    "status_code": a.status_code,
                    "latency_ms": round(a.latency_ms, 1),
                    "outcome": a.outcome,
                    "error": a.error,
                    "next_attempt_at": a.next_attempt_at,
                }
                for a in attempts.get(d.event_id, [])
            ],
        }
        for d in deliveries
    ]


def redeliver(session: Session, job_id: UUID, retry_window: timedelta) -> int:
    """Send a job's deliveries again now (with the same webhook-id), whatever became of them,
    retried again for ``retry_window``; return how many."""
    now = _now(session)
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.job_id == job_id)
        .values(
            status="pending",
            next_attempt_at=now,
            retry_until=now + retry_window,
            lease_until=None,
            delivered_at=None,
        )
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
