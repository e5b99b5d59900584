"""The API with the Kafka broker stopped for real (the local broker of `batchctl dev`):
a bounded 503 with Retry-After, never a hang or a 500; not ready; nothing visible; and after
the broker is back, the same request (same Idempotency-Key) gives exactly one job."""

import time
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from batchctl.dev import kafka_broker
from batchctl.dev.settings import DevSettings
from ingest_api.api_keys import create_key
from ingest_api.app import create_app
from tests.integration.conftest import wait_for

PUBLISH_TIMEOUT_S = 3.0


@pytest.fixture
def local_broker(kafka_settings) -> DevSettings:
    dev = DevSettings()
    if kafka_broker.running_pid(dev) is None or (
        kafka_settings.kafka_bootstrap_servers != dev.bootstrap_servers
    ):
        pytest.skip("needs the local broker of `batchctl dev up`, which this test stops")
    return dev


def test_a_stopped_broker_gives_a_bounded_503_and_nothing_half_visible(
    local_broker, api_settings, engine
):
    settings = api_settings.model_copy(update={"api_publish_timeout_s": PUBLISH_TIMEOUT_S})
    with sessionmaker(engine)() as session:
        user = f"carol-{uuid.uuid4().hex[:8]}"
        headers = {"Authorization": f"Bearer {create_key(session, user_id=user).secret}"}
    body = {"job_type": "query", "items": [{"content_hash": f"{i:064x}"} for i in range(50)]}
    retry_safely = {**headers, "Idempotency-Key": "first-try"}

    with TestClient(create_app(settings)) as api:
        assert api.get("/readyz").status_code == 200
        kafka_broker.stop(local_broker)
        try:
            started = time.monotonic()
            refused = api.post("/batch/jobs", json=body, headers=retry_safely)
            took = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "publish_failed"
            assert int(refused.headers["Retry-After"]) >= 1
            assert took < PUBLISH_TIMEOUT_S + 10, f"the 503 took {took:.1f}s"

            not_ready = api.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["kafka"].startswith("unreachable")
            # the API's record of the attempt exists, unpublished, and is not shown
            with engine.connect() as conn:
                attempt = conn.execute(
                    text("SELECT job_id, published_at FROM accepted_jobs WHERE user_id = :u"),
                    {"u": user},
                ).one()
            assert attempt.published_at is None
            assert api.get(f"/batch/jobs/{attempt.job_id}", headers=headers).status_code == 404
        finally:
            kafka_broker.start(local_broker)

        wait_for(lambda: api.get("/readyz").status_code == 200, 60, "the API to be ready again")
        accepted = api.post("/batch/jobs", json=body, headers=retry_safely)
        assert accepted.status_code == 202, accepted.text
        again = api.post("/batch/jobs", json=body, headers=retry_safely)
        assert again.json()["batch_job_id"] == accepted.json()["batch_job_id"]
        assert accepted.json()["batch_job_id"] == str(attempt.job_id)  # the same job
        job = api.get(f"/batch/jobs/{attempt.job_id}", headers=headers)
        assert job.status_code == 200 and job.json()["total_items"] == 50
