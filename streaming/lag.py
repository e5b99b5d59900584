"""``batch_consumer_lag``: how far a consumer is behind the end of its partitions."""

import asyncio
import logging

from aiokafka import AIOKafkaConsumer
from prometheus_client import Gauge

log = logging.getLogger(__name__)

CONSUMER_LAG = Gauge(
    "batch_consumer_lag",
    "Records behind the end of the partition",
    ["group", "topic", "partition"],
)


async def track_lag(consumer: AIOKafkaConsumer, group: str, every_s: float = 5.0) -> None:
    """Keep ``batch_consumer_lag`` current for the consumer's partitions: the end of the
    partition (as the last fetch saw it) minus the consumer's position."""
    while True:
        try:
            for tp in consumer.assignment():
                end = consumer.highwater(tp)
                if end is None:
                    continue
                position = await consumer.position(tp)
                CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, end - position))
        except Exception as exc:  # a rebalance in progress: the next round catches up
            log.debug("lag not measured: %r", exc)
        await asyncio.sleep(every_s)
