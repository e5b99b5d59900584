"""Request and response bodies."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from events.callback_urls import CallbackUrl
from events.models import JsonObject
from events.topics import Lane


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_type: str = Field(min_length=1, max_length=64)
    items: list[dict[str, Any]] = Field(min_length=1)
    metadata: JsonObject | None = None
    priority: Lane | None = Field(
        None,
        description="the job's lane: interactive jobs are served first; by default a job of "
        "up to API_INTERACTIVE_DEFAULT_MAX_ITEMS items is interactive, a larger one bulk",
    )
    callback_url: CallbackUrl | None = Field(
        None,
        description="where the job's JobFinished is POSTed, signed (Standard Webhooks), when "
        "it finishes; https, or http to a host the operator allows; else the caller's default "
        "(PUT /batch/webhook), if any",
    )


class JobAccepted(BaseModel):
    batch_job_id: UUID
    status: str
    total_items: int
    links: dict[str, str]


class ResultView(BaseModel):
    total_time_ms: float
    avg_item_time_ms: float
    success_rate: float
    result_summary: dict[str, Any]


class QueueView(BaseModel):
    """Where an unfinished job stands: its lane, the items the workers serve before its own
    (README, "Fair share"), the job type's current throughput, and the seconds until its
    last item at that throughput (None until there is one)."""

    lane: Lane
    items_ahead: int
    items_per_s: float | None
    eta_s: float | None


class JobView(BaseModel):
    batch_job_id: UUID
    job_type: str | None
    priority: Lane | None = None
    status: str
    total_items: int | None
    processed_items: int
    success_items: int
    failed_items: int
    cancelled_items: int
    progress_percent: float
    metadata: dict[str, Any] | None
    retry_of: UUID | None = None
    callback_url: str | None = None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    result: ResultView | None
    queue: QueueView | None = None  # (GET /batch/jobs/{id}, while unfinished)


class ItemView(BaseModel):
    item_index: int
    status: str
    input_data: dict[str, Any] | None
    output_data: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    attempts: int
    duration_ms: float | None
    processed_at: datetime | None


class ItemPage(BaseModel):
    items: list[ItemView]
    next_cursor: str | None


class JobPage(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None


class CancelAccepted(BaseModel):
    batch_job_id: UUID
    status: str
