"""Settings of the API process."""

from typing import Self

from pydantic import Field, model_validator

from events.callback_urls import CallbackPolicy
from events.codec import MAX_EVENT_BYTES
from storage.settings import DatabaseSettings
from streaming.settings import KafkaSettings


class ApiSettings(KafkaSettings, DatabaseSettings):
    """Environment: the Kafka variables, ``DATABASE_URL``, ``API_HOST`` (127.0.0.1), ``API_PORT``
    (8000), ``API_MAX_ITEMS_PER_REQUEST`` (100000, JSON bodies), ``API_MAX_ITEMS_PER_UPLOAD``
    (5000000, NDJSON uploads), ``API_MAX_BODY_BYTES`` (64 MiB, JSON bodies),
    ``API_MAX_ITEM_BYTES`` (64 KiB), ``API_PUBLISH_TIMEOUT_S`` (10: with Kafka unreachable a
    submission answers 503 within it), ``API_PUBLISH_LINGER_S`` (0.002: how long events wait for
    others' to share a request to Kafka), ``API_RATE_LIMIT_PER_S`` (200) and
    ``API_RATE_LIMIT_BURST`` (400) per key, shared by every API process, ``API_PAGE_SIZE``
    (100), ``API_MAX_PAGE_SIZE`` (1000); ``API_MAX_METADATA_BYTES`` (16 KiB),
    ``API_MAX_EVENT_BYTES`` (1,000,000: what the workers and the projector take, and less than a
    broker takes by default; at most the broker's ``max.message.bytes``); NDJSON uploads:
    ``API_MAX_UPLOAD_BYTES`` (4 GiB), ``API_UPLOAD_IDLE_TIMEOUT_S`` (30) and
    ``API_UPLOAD_TIMEOUT_S`` (3600); progress streams: ``API_MAX_STREAMS_PER_KEY`` (10),
    ``API_MAX_STREAMS`` (1000), ``API_STREAM_MAX_S`` (3600: then the client reconnects) and
    ``API_STREAM_KEY_CHECK_S`` (30: a revoked key's streams end within it); lanes:
    ``API_INTERACTIVE_DEFAULT_MAX_ITEMS`` (1000: a job of up to this many items goes to the
    interactive lane unless it asks for bulk), ``API_INTERACTIVE_MAX_ITEMS`` (10000: the largest
    job a key may send to the interactive lane, unless an operator set the key's own cap);
    quota: ``API_MAX_QUEUED_ITEMS_PER_USER`` (10000000: a submission that would put more of a
    user's items without an outcome in the queues is refused, 429); the web console:
    ``API_CONSOLE_SESSION_S`` (43200: a sign-in lasts this long); webhooks:
    ``WEBHOOK_ALLOWED_HOSTS`` (as the notifier's: a callback URL that can never be called is
    refused at submission, 422), ``WEBHOOK_RETRY_WINDOW_S`` (86400: a redelivery is retried this
    long)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_max_items_per_request: int = Field(100_000, ge=1)
    api_max_items_per_upload: int = Field(5_000_000, ge=1)
    api_max_body_bytes: int = Field(64 << 20, ge=1024)
    api_max_item_bytes: int = Field(64 << 10, ge=64)
    api_publish_timeout_s: float = Field(10.0, gt=0)
    api_publish_linger_s: float = Field(0.002, ge=0, le=1)
    api_rate_limit_per_s: float = Field(200.0, gt=0)
    api_rate_limit_burst: int = Field(400, ge=1)
    api_page_size: int = Field(100, ge=1)
    api_max_page_size: int = Field(1000, ge=1)
    api_max_metadata_bytes: int = Field(16 << 10, ge=2)
    api_max_event_bytes: int = Field(MAX_EVENT_BYTES, ge=4096)
    api_max_upload_bytes: int = Field(4 << 30, ge=1024)
    api_upload_idle_timeout_s: float = Field(30.0, gt=0)
    api_upload_timeout_s: float = Field(3600.0, gt=0)
    api_max_streams_per_key: int = Field(10, ge=1)
    api_max_streams: int = Field(1000, ge=1)
    api_stream_max_s: float = Field(3600.0, gt=0)
    api_stream_key_check_s: float = Field(30.0, gt=0)
    api_interactive_default_max_items: int = Field(1_000, ge=0)
    api_interactive_max_items: int = Field(10_000, ge=0)
    api_max_queued_items_per_user: int = Field(10_000_000, ge=1)
    api_console_session_s: float = Field(12 * 3600, gt=0, le=30 * 24 * 3600)
    webhook_allowed_hosts: str = ""
    webhook_retry_window_s: float = Field(86_400.0, gt=0)

    @property
    def callback_policy(self) -> CallbackPolicy:
        return CallbackPolicy.from_setting(self.webhook_allowed_hosts)

    @model_validator(mode="after")
    def events_fit(self) -> Self:
        """An item's event and a job's event must fit in ``api_max_event_bytes`` with their
        envelope: then no event the API accepts is refused downstream for its size."""
        room = self.api_max_event_bytes - ENVELOPE_BYTES
        for name in ("api_max_item_bytes", "api_max_metadata_bytes"):
            if getattr(self, name) > room:
                raise ValueError(
                    f"{name.upper()} must leave {ENVELOPE_BYTES} bytes of "
                    f"API_MAX_EVENT_BYTES for the envelope (at most {room})"
                )
        return self


ENVELOPE_BYTES = 1024  # an event's fields but its input or metadata: ~300 bytes
