"""The metrics endpoint of the workers and the projector (the API serves its own on
``/metrics``), and metrics bumped from the event loop's thread without a lock
(``LoopCounter``, ``LoopHistogram``) for per-item series."""

import logging
from bisect import bisect_left
from itertools import accumulate

from prometheus_client import start_http_server
from prometheus_client.utils import floatToGoString
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class MetricsSettings(BaseSettings):
    """Environment: ``METRICS_PORT`` (unset: no metrics endpoint)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    metrics_port: int | None = Field(None, ge=1, le=65535)


class LoopCounter:
    """A counter bumped from the event loop's thread only: no lock. prometheus_client's
    counter and histogram take a lock per call, and its histogram scans its buckets in
    Python, per item on the workers' hot path. ``WorkerSeriesCollector``
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
