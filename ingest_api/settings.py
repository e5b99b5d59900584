"""Settings of the API process."""

from pydantic import Field

from streaming.settings import DatabaseSettings, KafkaSettings


class ApiSettings(KafkaSettings, DatabaseSettings):
    """Environment: the Kafka variables, ``DATABASE_URL``, ``API_HOST`` (127.0.0.1),
    ``API_PORT`` (8000), ``API_MAX_ITEMS_PER_REQUEST`` (100000, JSON bodies),
    ``API_MAX_ITEMS_PER_UPLOAD`` (5000000, NDJSON uploads), ``API_MAX_BODY_BYTES`` (64 MiB,
    JSON bodies), ``API_MAX_ITEM_BYTES`` (64 KiB), ``API_PUBLISH_TIMEOUT_S`` (10: with
    Kafka unreachable a submission answers 503 within it), ``API_RATE_LIMIT_PER_S`` (200) and
    ``API_RATE_LIMIT_BURST`` (400) per key and process, ``API_PAGE_SIZE`` (100),
    ``API_MAX_PAGE_SIZE`` (1000)."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_max_items_per_request: int = Field(100_000, ge=1)
    api_max_items_per_upload: int = Field(5_000_000, ge=1)
    api_max_body_bytes: int = Field(64 << 20, ge=1024)
    api_max_item_bytes: int = Field(64 << 10, ge=64)
    api_publish_timeout_s: float = Field(10.0, gt=0)
    api_rate_limit_per_s: float = Field(200.0, gt=0)
    api_rate_limit_burst: int = Field(400, ge=1)
    api_page_size: int = Field(100, ge=1)
    api_max_page_size: int = Field(1000, ge=1)
