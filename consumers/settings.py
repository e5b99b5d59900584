"""Settings of one worker process."""

from pydantic import Field

from streaming.settings import KafkaSettings


class WorkerSettings(KafkaSettings):
    """Environment: the Kafka variables, plus ``WORKER_CONCURRENCY`` (items in flight per
    process), ``WORKER_MAX_ATTEMPTS``, ``WORKER_BACKOFF_BASE_S``, ``WORKER_BACKOFF_MAX_S``,
    ``WORKER_MAX_BATCH`` (records per poll), ``WORKER_MAX_EVENT_BYTES``."""

    worker_concurrency: int = Field(64, ge=1, le=10_000)
    worker_max_attempts: int = Field(3, ge=1, le=100)
    worker_backoff_base_s: float = Field(0.2, ge=0)
    worker_backoff_max_s: float = Field(10.0, ge=0)
    worker_max_batch: int = Field(2000, ge=1)
    worker_max_event_bytes: int = Field(1_000_000, ge=1024)

    def group_id(self, job_type: str) -> str:
        return f"{self.topic_prefix}workers.{job_type}"
