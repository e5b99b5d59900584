"""Prometheus metrics of the workers and the projector, and the HTTP endpoint they are
scraped from (the API serves its own on ``/metrics``). Series are bound to their labels once,
so the per-item cost is an increment."""

import asyncio
import functools
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

ITEMS_PROCESSED = Counter(
    "batch_worker_items_processed_total",
    "Items given an outcome, by job type and outcome",
    ["job_type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "batch_worker_handler_seconds",
    "Time in the handler per item (all attempts)",
    ["job_type"],
    buckets=LATENCY_BUCKETS,
)
RETRIES = Counter("batch_worker_retries_total", "Handler attempts retried", ["job_type"])
DEAD_LETTERED = Counter(
    "batch_worker_dead_lettered_total",
    "Events sent to the dead-letter topic",
    ["job_type", "reason"],
)
CONSUMER_LAG = Gauge(
    "batch_consumer_lag",
    "Records behind the end of the partition",
    ["group", "topic", "partition"],
)
PROJECTOR_EVENTS = Counter("batch_projector_events_total", "Events folded into the tables")
PROJECTOR_BATCH = Histogram(
    "batch_projector_fold_batch_size",
    "Events per folded batch",
    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000),
)
PROJECTOR_WRITE_SECONDS = Histogram(
    "batch_projector_write_seconds", "Time to write one folded batch", buckets=LATENCY_BUCKETS
)


@dataclass(frozen=True, slots=True)
class JobTypeSeries:
    """The series of one job type, bound once."""

    succeeded: Counter
    failed: Counter
    cancelled: Counter
    handler_seconds: Histogram
    retries: Counter

    def outcome(self, event_type: str) -> Counter:
        if event_type == "ItemSucceeded":
            return self.succeeded
        return self.failed if event_type == "ItemFailed" else self.cancelled


@functools.cache
def series_of(job_type: str) -> JobTypeSeries:
    return JobTypeSeries(
        ITEMS_PROCESSED.labels(job_type, "succeeded"),
        ITEMS_PROCESSED.labels(job_type, "failed"),
        ITEMS_PROCESSED.labels(job_type, "cancelled"),
        HANDLER_SECONDS.labels(job_type),
        RETRIES.labels(job_type),
    )


def serve(port: int | None) -> None:
    """Expose this process's metrics on ``port`` (all interfaces); ``None``: not at all."""
    if port is None:
        return
    try:
        start_http_server(port)
    except OSError as exc:  # metrics are worth less than the work: go on without them
        log.error("no metrics endpoint: port %d: %s", port, exc)
        return
    log.info("metrics on http://0.0.0.0:%d/metrics", port)


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
