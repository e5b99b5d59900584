"""Settings of the notifier process."""

from pydantic import Field

from events.callback_urls import CallbackPolicy
from runtime.metrics import MetricsSettings
from storage.settings import DatabaseSettings
from streaming.settings import KafkaSettings


class NotifierSettings(KafkaSettings, DatabaseSettings, MetricsSettings):
    """Environment: the Kafka variables, ``DATABASE_URL``, and

    - ``WEBHOOK_ALLOWED_HOSTS``: host names or addresses that may be called over http, and
      whose addresses may be private or loopback (comma-separated; ``*``: every host);
    - ``WEBHOOK_TIMEOUT_S``: one attempt's limit, connection to answer (10);
    - ``WEBHOOK_MAX_PER_HOST``: attempts in flight to one host (4), ``WEBHOOK_MAX_IN_FLIGHT``
      in all (64), per notifier process;
    - ``WEBHOOK_RETRY_BASE_S`` (5), ``WEBHOOK_RETRY_MAX_DELAY_S`` (3600),
      ``WEBHOOK_RETRY_WINDOW_S`` (86400): the first retry's delay, the largest, and how long
      after its first attempt a delivery is retried;
    - ``WEBHOOK_MAX_RESPONSE_BYTES``: how much of an answer is read (65536).
    """

    webhook_allowed_hosts: str = ""
    webhook_timeout_s: float = Field(10.0, gt=0, le=300)
    webhook_max_per_host: int = Field(4, ge=1, le=1000)
    webhook_max_in_flight: int = Field(64, ge=1, le=10_000)
    webhook_retry_base_s: float = Field(5.0, gt=0)
    webhook_retry_max_delay_s: float = Field(3600.0, gt=0)
    webhook_retry_window_s: float = Field(86_400.0, gt=0)
    webhook_max_response_bytes: int = Field(65_536, ge=0)
    webhook_poll_s: float = Field(0.5, gt=0)  # how often due retries are looked for

    @property
    def policy(self) -> CallbackPolicy:
        return CallbackPolicy.from_setting(self.webhook_allowed_hosts)

    @property
    def lease_s(self) -> float:
        """How long an attempt under way keeps its delivery from the other notifiers (and
        from this one after a crash): past its timeout, with a margin."""
        return self.webhook_timeout_s + 5.0

    def group_id(self) -> str:
        return self.topics.notifier_group()
