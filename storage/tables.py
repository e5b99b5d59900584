"""Tables. ``jobs``, ``items``, ``results`` and ``projection_checkpoints`` are written only by
the projector; ``api_keys`` only by the API and ``batchctl keys``; ``devices`` and ``proofs``
(the registry) by the enrollment and proof_lock workers, and restored from the log by
``batchctl replay``.

The seed's ``metadata`` column keeps its name but is mapped as ``job_metadata``:
``metadata`` is reserved by SQLAlchemy's declarative classes.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base

TIMESTAMPTZ = DateTime(timezone=True)

# The statuses the projector writes (see projections/writer.py).
FINAL_JOB_STATUSES = ("completed", "cancelled", "failed")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    # NULL until the JobSubmitted event is folded (outcomes may arrive first).
    user_id: Mapped[str | None] = mapped_column(String(128))
    job_type: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str | None] = mapped_column(String(16))  # its lane: interactive | bulk
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    total_items: Mapped[int | None] = mapped_column(Integer)
    processed_items: Mapped[int] = mapped_column(Integer, server_default="0")
    success_items: Mapped[int] = mapped_column(Integer, server_default="0")
    failed_items: Mapped[int] = mapped_column(Integer, server_default="0")
    cancelled_items: Mapped[int] = mapped_column(Integer, server_default="0")
    progress_percent: Mapped[float] = mapped_column(Float, server_default="0")
    # Integer microseconds: a sum of floats depends on the order, and replays must be exact.
    sum_duration_us: Mapped[int] = mapped_column(BigInteger, server_default="0")
    job_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    retry_of: Mapped[UUID | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    started_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    last_outcome_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    completed_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    # where its JobFinished is delivered (else its owner's default endpoint, if any)
    callback_url: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_jobs_user_id_created_at", "user_id", "created_at"),
        Index("ix_jobs_status", "status"),
        Index(
            "ix_jobs_unfinished_user_id",
            "user_id",
            postgresql_where=text("status IN ('pending', 'processing')"),
        ),
    )


class Item(Base):
    __tablename__ = "items"

    job_id: Mapped[UUID] = mapped_column(primary_key=True)
    item_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    input_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    output_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    duration_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    processed_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    # True for failed and cancelled items, NULL otherwise: what the partial index below
    # selects on, so that a successful outcome leaves every index as it is. Migration 0006.
    unsuccessful: Mapped[bool | None] = mapped_column(Boolean)

    __table_args__ = (
        # Failed and cancelled items are found by this index; the bulk (pending, success)
        # is paged through the primary key. See migrations 0002 and 0006.
        Index(
            "ix_items_job_id_item_index_unsuccessful",
            "job_id",
            "item_index",
            postgresql_where=text("unsuccessful"),
        ),
        # Room on each page for the terminal version of its pending rows (migration 0006).
        {"postgresql_with": {"fillfactor": 50}},
    )


class Result(Base):
    __tablename__ = "results"

    job_id: Mapped[UUID] = mapped_column(primary_key=True)
    total_time_ms: Mapped[float] = mapped_column(Float)
    avg_item_time_ms: Mapped[float] = mapped_column(Float)
    success_rate: Mapped[float] = mapped_column(Float)
    result_summary: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)


class ProjectionCheckpoint(Base):
    """The next offset to fold, per (projection, topic, partition); written in the same
    transaction as the rows it produced."""

    __tablename__ = "projection_checkpoints"

    projection: Mapped[str] = mapped_column(String(64), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())


class ProjectionState(Base):
    """One row: the epoch of the projected tables, bumped when a shadow replay swaps them."""

    __tablename__ = "projection_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, server_default="0")

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class AcceptedJob(Base):
    """The API's record of a job it accepted (the API is its only writer): idempotent
    submission per (user, Idempotency-Key), and the job's first answer to GET before the
    projector has folded it."""

    __tablename__ = "accepted_jobs"

    job_id: Mapped[UUID] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    job_type: Mapped[str] = mapped_column(String(64))
    total_items: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(16), server_default="bulk")
    job_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())
    # NULL until every event of the job is acknowledged by Kafka
    published_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)

    __table_args__ = (
        Index(
            "uq_accepted_jobs_user_id_idempotency_key",
            "user_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_accepted_jobs_user_id_created_at", "user_id", "created_at"),
    )


class ApiKey(Base):
    """An API key: only its SHA-256 hash is stored; the key itself is shown once."""

    __tablename__ = "api_keys"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    # the largest job it may submit as interactive (None: API_INTERACTIVE_MAX_ITEMS; 0: none)
    interactive_max_items: Mapped[int | None] = mapped_column(Integer)
    operator: Mapped[bool] = mapped_column(Boolean, server_default=false())  # the operator page
    # its rate limit's token bucket, shared by every API process (None: full)
    rate_tokens: Mapped[float | None] = mapped_column(Float)
    rate_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class ConsoleSession(Base):
    """A browser signed in to the web console with an API key: the cookie holds a random
    token, only its SHA-256 hash is stored; revoking the key (or deleting it) ends it."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, index=True)


class JobNotification(Base):
    """A job's JobFinished, recorded in the transaction that finished the job and published
    to the notifications topic after it (an outbox). Not a projected table: a replay keeps
    it, so a job announced once is never announced again."""

    __tablename__ = "job_notifications"

    job_id: Mapped[UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB)  # what the event says of the job
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)

    __table_args__ = (
        Index(
            "ix_job_notifications_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


class WebhookEndpoint(Base):
    """A user's default callback URL (``batchctl webhooks set``)."""

    __tablename__ = "webhook_endpoints"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())


class WebhookSecret(Base):
    """A user's signing secret (``whsec_...``); after a rotation the previous one also signs
    until ``previous_until``."""

    __tablename__ = "webhook_secrets"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_until: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())


class WebhookDelivery(Base):
    """The delivery of one JobFinished to one URL, retried until it is received, refused,
    or its retry window ends. ``body`` is sent byte for byte on every attempt."""

    __tablename__ = "webhook_deliveries"

    event_id: Mapped[UUID] = mapped_column(primary_key=True)  # the webhook-id
    job_id: Mapped[UUID] = mapped_column(index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(Text)  # (per-host concurrency)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # pending (an attempt is due at next_attempt_at) | delivered | failed (no more attempts)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=func.now())
    retry_until: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    next_attempt_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    lease_until: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)  # an attempt under way
    delivered_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class WebhookAttempt(Base):
    """One attempt of a delivery: when, the answer (or the error), how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_deliveries.event_id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # delivered | retry (next_attempt_at) | failed (no retry: the answer, or the window)
    outcome: Mapped[str] = mapped_column(String(16))
    next_attempt_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)


class Device(Base):
    """An enrolled capture device; ``(job_id, item_index)`` is the item that enrolled it."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(256))
    enrolled_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    job_id: Mapped[UUID]
    item_index: Mapped[int] = mapped_column(Integer)


class Proof(Base):
    """A locked proof: one per content hash, owned by the device whose item locked it first."""

    __tablename__ = "proofs"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    proof_id: Mapped[UUID] = mapped_column(unique=True)
    device_id: Mapped[str] = mapped_column(String(128), index=True)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    captured_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    locked_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ)
    job_id: Mapped[UUID]
    item_index: Mapped[int] = mapped_column(Integer)
