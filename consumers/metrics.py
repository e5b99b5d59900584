"""The workers' Prometheus series. The per-item ones are loop-side counters
(``runtime.metrics.LoopCounter``), bound to their job type once and exposed when scraped by
``WorkerSeriesCollector``."""

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from runtime.metrics import LATENCY_BUCKETS, LoopCounter, LoopHistogram

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
