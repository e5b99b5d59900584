"""The workers' lock-free series read as Prometheus would read prometheus_client's own."""

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consumers.metrics import REGISTRY, series_of
from runtime.metrics import LATENCY_BUCKETS


def samples(text: bytes, name: str, **labels: str) -> dict[tuple[str, str], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name.startswith(name) and labels.items() <= sample.labels.items():
                found[(sample.name, sample.labels.get("le", ""))] = sample.value
    return found


def test_the_handler_histogram_and_outcome_counts_match_prometheus_clients():
    job_type = f"metrics_{random.randrange(10**9)}"
    series = series_of(job_type)
    reference = CollectorRegistry()
    histogram = Histogram(
        "batch_worker_handler_seconds",
        "",
        ["job_type"],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )
    counter = Counter(
        "batch_worker_items_processed", "", ["job_type", "outcome"], registry=reference
    )
    rng = random.Random(3)
    values = [rng.choice([rng.random() * 12, *LATENCY_BUCKETS]) for _ in range(2_000)]
    for value in values:
        series.handler_seconds.observe(value)
        histogram.labels(job_type).observe(value)
    for event_type, outcome, times in [
        ("ItemSucceeded", "succeeded", 5),
        ("ItemFailed", "failed", 2),
        ("ItemCancelled", "cancelled", 1),
    ]:
        for _ in range(times):
            series.outcome(event_type).inc()
            counter.labels(job_type, outcome).inc()

    ours, theirs = generate_latest(REGISTRY), generate_latest(reference)
    for name in ("batch_worker_handler_seconds_bucket", "batch_worker_handler_seconds_count"):
        assert samples(ours, name, job_type=job_type) == samples(theirs, name, job_type=job_type)
    ours_sum = samples(ours, "batch_worker_handler_seconds_sum", job_type=job_type)
    theirs_sum = samples(theirs, "batch_worker_handler_seconds_sum", job_type=job_type)
    assert abs(ours_sum[("batch_worker_handler_seconds_sum", "")] - sum(values)) < 1e-6
    assert ours_sum.keys() == theirs_sum.keys()
    total = "batch_worker_items_processed_total"
    assert samples(ours, total, job_type=job_type) == samples(theirs, total, job_type=job_type)
    assert len(samples(ours, "batch_worker_handler_seconds_bucket", job_type=job_type)) == 15
