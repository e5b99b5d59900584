"""aiokafka client factories: every client gets the same security settings."""

import ssl
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from streaming.settings import KafkaSettings


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def make_producer(settings: KafkaSettings, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all) that batches: the send path is the hot path. Its
    batches are compressed (``KAFKA_COMPRESSION``, lz4 by default: it costs the clients less
    CPU than the broker saves on the bytes it writes and serves; BENCHMARKS.md)."""
    options: dict[str, Any] = {
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "compression_type": (
            None if settings.kafka_compression == "none" else settings.kafka_compression
        ),
    }
    options.update(overrides)
    return AIOKafkaProducer(**connection_options(settings), **options)


def make_consumer(settings: KafkaSettings, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "fetch_max_bytes": 32 * 1024 * 1024,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **connection_options(settings), **options)


def make_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection_options(settings))


async def topic_partitions(
    consumer: AIOKafkaConsumer, wanted: Callable[[str], object]
) -> list[TopicPartition]:
    """Every partition of the topics ``wanted`` accepts, from fresh cluster metadata (a
    consumer only keeps the partitions of topics it is subscribed to)."""
    cluster = await consumer._client.fetch_all_metadata()
    return [
        TopicPartition(topic, partition)
        for topic in sorted(cluster.topics())
        if wanted(topic)
        for partition in sorted(cluster.partitions_for_topic(topic) or [])
    ]
