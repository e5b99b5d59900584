"""Settings of one worker process."""

from pydantic import Field

from runtime.metrics import MetricsSettings
from storage.settings import DatabaseSettings
from streaming.settings import KafkaSettings


class WorkerSettings(KafkaSettings, DatabaseSettings, MetricsSettings):
    """Environment: the Kafka variables, plus ``WORKER_CONCURRENCY`` (items in flight per
    process), ``WORKER_MAX_ATTEMPTS``, ``WORKER_BACKOFF_BASE_S``, ``WORKER_BACKOFF_MAX_S``,
    ``WORKER_MAX_BATCH`` (records per poll), ``WORKER_MAX_EVENT_BYTES``,
    ``WORKER_COMMIT_INTERVAL_S``, ``WORKER_SHUTDOWN_GRACE_S`` (in-flight items finish within
    it on shutdown or revocation), ``WORKER_LINGER_S`` (outcome batching),
    ``WORKER_CANCELLATION_TTL_S`` (how long a cancelled job is remembered), ``DATABASE_URL``
    and ``PROJECTION_NAME`` (where cancellations already folded are read at start)."""

    worker_concurrency: int = Field(64, ge=1, le=10_000)
    worker_max_attempts: int = Field(3, ge=1, le=100)
    worker_backoff_base_s: float = Field(0.2, ge=0)
    worker_backoff_max_s: float = Field(10.0, ge=0)
    worker_max_batch: int = Field(2000, ge=1)
    worker_max_event_bytes: int = Field(1_000_000, ge=1024)
    worker_commit_interval_s: float = Field(0.5, gt=0)
    worker_shutdown_grace_s: float = Field(10.0, ge=0)
    worker_linger_s: float = Field(0.005, ge=0)
    worker_cancellation_ttl_s: float = Field(7 * 24 * 3600, gt=0)

    projection_name: str = "main"

    def group_id(self, job_type: str) -> str:
        return self.topics.worker_group(job_type)
