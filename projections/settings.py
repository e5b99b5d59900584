"""Settings of the projector process."""

from pydantic import Field

from runtime.metrics import MetricsSettings
from storage.settings import DatabaseSettings
from streaming.settings import KafkaSettings


class ProjectorSettings(KafkaSettings, DatabaseSettings, MetricsSettings):
    """Environment: the Kafka variables, ``DATABASE_URL``, ``PROJECTION_NAME`` (default
    ``main``; a replay into fresh tables uses another), ``PROJECTOR_MAX_BATCH`` (events per
    transaction), ``PROJECTOR_MAX_EVENT_BYTES``."""

    projection_name: str = Field("main", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    projector_max_batch: int = Field(5000, ge=1)
    projector_max_event_bytes: int = Field(1_000_000, ge=1024)
    public_api_url: str = Field("http://localhost:8000", pattern=r"^https?://[\x21-\x7e]+$")
    projector_announce_sweep_s: float = Field(5.0, gt=0)

    def group_id(self) -> str:
        return self.topics.projector_group(self.projection_name)
