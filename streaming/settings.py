"""Kafka connection settings, shared by every process's own settings class."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.topics import Topics


class KafkaSettings(BaseSettings):
    """Environment: ``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``,
    ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``,
    ``KAFKA_SSL_CAFILE``, ``KAFKA_COMPRESSION`` (the codec of what this process publishes:
    ``lz4``, ``zstd``, ``snappy``, ``gzip`` or ``none``; events read may come in any of them),
    ``BATCH_TOPIC_PREFIX``, ``BATCH_TOPIC_PARTITIONS``, ``BATCH_TOPIC_REPLICATION``."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_compression: Literal["lz4", "zstd", "snappy", "gzip", "none"] = "lz4"
    topic_prefix: str = Field("batch.", validation_alias="BATCH_TOPIC_PREFIX")
    topic_partitions: int = Field(6, ge=1, validation_alias="BATCH_TOPIC_PARTITIONS")
    topic_replication_factor: int = Field(1, ge=1, validation_alias="BATCH_TOPIC_REPLICATION")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)
