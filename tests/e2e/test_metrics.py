"""The documented Prometheus series, scraped from a running stack (`batchctl run`): the API's
/metrics, a worker's and the projector's metrics ports."""

import asyncio
import subprocess
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key
from jobtypes.registry import job_types
from tests.e2e.test_batchctl_run import _ready, free_port
from tests.integration.conftest import publish, wait_for


def scrape(port: int, path: str = "/metrics") -> dict[tuple[str, tuple], float]:
    text = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).text
    return _parsed(text)


def scrape_when_up(port: int) -> dict[tuple[str, tuple], float]:
    """``scrape``, or nothing while the port does not answer yet (a part still starting, or
    restarted by ``batchctl run``, on a loaded machine)."""
    try:
        return scrape(port)
    except httpx.ConnectError:
        return {}


def _parsed(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= set(lbls))


def test_the_documented_series_are_exposed(stack_env, engine, kafka_settings):
    api_port, metrics_port = free_port(), free_port()
    worker_port = metrics_port + 1 + job_types().index("scripted")
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchctl",
            "run",
            "--port",
            str(api_port),
            "--metrics-port",
            str(metrics_port),
        ],
        env={**stack_env, "WORKER_BACKOFF_BASE_S": "0.01"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _ready(api_port), 60, "the API to be ready")
        with sessionmaker(engine)() as session:
            key = create_key(session, user_id="metrics-user").secret
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        items = [{"token": f"m{i}"} for i in range(40)]
        items += [{"token": "flaky", "transient_failures": 1}]
        items += [{"token": "doomed", "permanent_code": "nope"}]
        job_id = api.post("/batch/jobs", json={"job_type": "scripted", "items": items}).json()[
            "batch_job_id"
        ]
        asyncio.run(
            publish(kafka_settings, [(kafka_settings.topics.items("scripted"), b"k", b"garbage")])
        )
        wait_for(
            lambda: api.get(f"/batch/jobs/{job_id}").json()["status"] == "completed",
            60,
            "the job to complete",
        )

        api_side = scrape(api_port)
        assert value(api_side, "batch_api_requests_total", route="/batch/jobs", status="202") >= 1
        assert value(api_side, "batch_api_items_accepted_total", job_type="scripted") >= 42
        assert value(api_side, "batch_api_request_seconds_count", route="/batch/jobs/{job_id}") >= 1

        worker = wait_for(
            lambda: (
                (s := scrape_when_up(worker_port))
                and value(s, "batch_worker_dead_lettered_total", job_type="scripted") >= 1
                and s
            ),
            30,
            "the worker's metrics",
        )
        processed = "batch_worker_items_processed_total"
        assert value(worker, processed, job_type="scripted", outcome="succeeded") >= 41
        assert value(worker, processed, job_type="scripted", outcome="failed") >= 1
        assert value(worker, "batch_worker_retries_total", job_type="scripted") >= 1
        assert value(worker, "batch_worker_handler_seconds_count", job_type="scripted") >= 42
        assert (
            value(
                worker,
                "batch_worker_dead_lettered_total",
                job_type="scripted",
                reason="invalid_json",
            )
            >= 1
        )
        group = f"{kafka_settings.topic_prefix}workers.scripted"
        wait_for(
            lambda: any(
                n == "batch_consumer_lag" and ("group", group) in lbls
                for (n, lbls) in scrape_when_up(worker_port)
            ),
            30,
            "the worker's consumer lag series",
        )

        projector = scrape(metrics_port)
        assert value(projector, "batch_projector_events_total") >= 42
        assert value(projector, "batch_projector_fold_batch_size_count") >= 1
        assert value(projector, "batch_projector_write_seconds_count") >= 1
    finally:
        run.terminate()
        run.wait(40)
