"""The projector's Prometheus series."""

from prometheus_client import Counter, Histogram

from runtime.metrics import LATENCY_BUCKETS

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
