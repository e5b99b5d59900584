"""PostgreSQL restarted (immediate mode: its connections cut) under a query worker mid-job:
the worker pauses while the database does not answer, spends no item's attempts on it, and
the job completes with no item failed (before: hundreds of items ``failed``, ``handler_error``
"the database system is starting up")."""

import asyncio
import subprocess
import time
import uuid

import pytest
from sqlalchemy import text

from events.codec import encode
from tests import factories as f
from tests.integration.conftest import publish_many, wait_for, wait_job
from tests.integration.test_projector import _local_cluster

ITEMS = 40_000


def _processed(engine, job_id: uuid.UUID) -> int:  # type: ignore[no-untyped-def]
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM items WHERE job_id = :id AND status <> 'pending'"),
                    {"id": job_id},
                ).scalar_one()
            )
    except Exception:  # the database is restarting
        return 0


def test_a_postgresql_restart_mid_job_fails_no_item(
    kafka_settings, engine, processes, database_url
):
    cluster = _local_cluster()
    if cluster is None or ("127.0.0.1" not in database_url and "localhost" not in database_url):
        pytest.skip("needs the machine's own PostgreSQL cluster and root to restart it")
    topics = kafka_settings.topics
    job_id = uuid.uuid4()
    messages = [(topics.jobs, str(job_id).encode(), encode(f.job_submitted(job_id, ITEMS)))]
    messages += [
        (topics.items("query"), f"{job_id}:{i}".encode(), encode(f.item_submitted(job_id, i)))
        for i in range(ITEMS)
    ]
    asyncio.run(publish_many(kafka_settings, messages))
    processes.start("projector")
    worker = processes.start("worker", "--job-type", "query", LOG_LEVEL="INFO")
    wait_for(lambda: _processed(engine, job_id) >= ITEMS // 5, 120, "a fifth of the job")

    restarted = time.monotonic()
    subprocess.run(["pg_ctlcluster", *cluster, "restart", "-m", "immediate"], check=True)
    engine.dispose()  # the test's own pooled connections died with the server
    print(f"PostgreSQL back after {time.monotonic() - restarted:.1f}s")

    job = wait_job(engine, job_id, 240, lambda j: j["status"] == "completed", "the job")
    assert (job["success_items"], job["failed_items"]) == (ITEMS, 0)
    assert worker.poll() is None
