"""Settings of ``batchctl dev``: where the local services live and which ports they use."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

KAFKA_VERSION = "3.9.1"


class DevSettings(BaseSettings):
    """Environment: ``BATCH_DEV_DIR`` (default ``.dev``, git-ignored), ``BATCH_DEV_KAFKA_PORT``
    (9092), ``BATCH_DEV_CONTROLLER_PORT`` (9093), ``BATCH_DEV_KAFKA_BROKERS`` (1; 3 runs a
    replicated cluster: nodes on consecutive ports from the Kafka port, their controllers on
    the ports after those), ``BATCH_DEV_KAFKA_HEAP_MB`` (512),
    ``BATCH_DEV_JAR_CACHE`` (``~/.cache/archiveorigin-batch``), ``DATABASE_URL`` (when set,
    that PostgreSQL is used and the local one is left alone)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_prefix="BATCH_DEV_")

    dir: Path = Path(".dev")
    kafka_port: int = 9092
    controller_port: int = 9093
    kafka_brokers: int = Field(1, ge=1, le=5)
    kafka_heap_mb: int = Field(512, ge=128, le=512)
    jar_cache: Path = Path.home() / ".cache" / "archiveorigin-batch"
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    pg_user: str = "batch"
    pg_password: str = "batch"
    pg_database: str = "archiveorigin_batch"

    @property
    def kafka_dir(self) -> Path:
        return self.dir.resolve() / "kafka"

    @property
    def jars_dir(self) -> Path:
        return self.jar_cache.expanduser() / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.kafka_ports)

    @property
    def kafka_ports(self) -> list[int]:
        return [self.kafka_port + i for i in range(self.kafka_brokers)]

    @property
    def controller_ports(self) -> list[int]:
        if self.kafka_brokers == 1:
            return [self.controller_port]
        return [self.kafka_port + self.kafka_brokers + i for i in range(self.kafka_brokers)]

    @property
    def replication_factor(self) -> int:
        """Of every topic, internal ones too: three copies on a cluster of three or more."""
        return min(3, self.kafka_brokers)

    @property
    def local_database_url(self) -> str:
        return (
            f"postgresql+psycopg2://{self.pg_user}:{self.pg_password}"
            f"@127.0.0.1:5432/{self.pg_database}"
        )
