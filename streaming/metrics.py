"""Prometheus metrics of the workers and the projector, and the HTTP endpoint they are
scraped from (the API serves its own on ``/metrics``). Series are bound to their labels once;
the per-item ones are lock-free counters of the event loop's thread (``LoopCounter``)."""

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

RETRIES = Counter("batch_worker_retries_total", "Handler attempts retried", ["job_type"])
DEAD_LETTERED = Counter(
    "batch_worker_dead_lettered_total",
    "Events sent to the dead-letter topic",
    ["job_type", "reason"],
)
WORKER_PAUSED = Gauge(
    "batch_worker_paused",
    "1 while a worker's fetching is paused: an item waits for this dependency to answer",
    ["job_type", "dependency"],
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
PROJECTOR_QUARANTINED = Counter(
    "batch_projector_quarantined_total",
    "Records the projector dead-lettered: undecodable (by reason) or refused by PostgreSQL "
    "(unprojectable)",
    ["reason"],
)
PROJECTOR_WRITE_SECONDS = Histogram(
    "batch_projector_write_seconds", "Time to write one folded batch", buckets=LATENCY_BUCKETS
)


class LoopCounter:
    """A counter bumped from the event loop's thread only: no lock. prometheus_client's
    counter and histogram take a lock per call, and its histogram scans its buckets in
    Python: together a quarter of a no-op item's time in a worker. ``WorkerSeriesCollector``
    exposes these as ordinary Prometheus series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class LoopHistogram:
    """A histogram observed from the event loop's thread only (see ``LoopCounter``)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative, as Prometheus has them: ``(le, count of values <= le)``."""
        cumulative = list(accumulate(list(self.counts)))
        labels = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        return list(zip(labels, cumulative, strict=True))


@dataclass(frozen=True, slots=True)
class JobTypeSeries:
    """The series of one job type, bound once."""

    succeeded: LoopCounter
    failed: LoopCounter
    cancelled: LoopCounter
    handler_seconds: LoopHistogram
    retries: Counter

    def outcome(self, event_type: str) -> LoopCounter:
        if event_type == "ItemSucceeded":
            return self.succeeded
        return self.failed if event_type == "ItemFailed" else self.cancelled


_SERIES: dict[str, JobTypeSeries] = {}


def series_of(job_type: str) -> JobTypeSeries:
    series = _SERIES.get(job_type)
    if series is None:
        series = _SERIES[job_type] = JobTypeSeries(
            LoopCounter(),
            LoopCounter(),
            LoopCounter(),
            LoopHistogram(LATENCY_BUCKETS),
            RETRIES.labels(job_type),
        )
    return series


class WorkerSeriesCollector(Collector):
    """``batch_worker_items_processed_total`` and ``batch_worker_handler_seconds``, read from
    the job types' loop-side counters when scraped."""

    def collect(self) -> Iterator[Metric]:
        processed = CounterMetricFamily(
            "batch_worker_items_processed",
            "Items given an outcome, by job type and outcome",
            labels=["job_type", "outcome"],
        )
        seconds = HistogramMetricFamily(
            "batch_worker_handler_seconds",
            "Time in the handler per item (all attempts)",
            labels=["job_type"],
        )
        for job_type, series in list(_SERIES.items()):
            processed.add_metric([job_type, "succeeded"], series.succeeded.value)
            processed.add_metric([job_type, "failed"], series.failed.value)
            processed.add_metric([job_type, "cancelled"], series.cancelled.value)
            histogram = series.handler_seconds
            seconds.add_metric([job_type], histogram.buckets(), histogram.sum)
        yield processed
        yield seconds


REGISTRY.register(WorkerSeriesCollector())


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
