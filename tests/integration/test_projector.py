"""The projector process on real Kafka and PostgreSQL: killed mid-backlog, or with its
database restarted under it, it ends with exactly the tables an uninterrupted run gives."""

import asyncio
import os
import shutil
import signal
import subprocess
import uuid

import pytest
from sqlalchemy import text

from events.codec import encode
from tests import factories as f
from tests.integration.conftest import (
    item_statuses,
    job_row,
    publish_many,
    wait_for,
    wait_fully_folded,
)

JOBS, ITEMS_PER_JOB = 25, 999  # 25 x (1 + 2 x 999) = 49,975 events


def backlog(settings) -> tuple[list[tuple[str, bytes, bytes]], list[uuid.UUID]]:
    topics = settings.topics
    messages, job_ids = [], []
    for _ in range(JOBS):
        job_id, events = f.mixed_job(ITEMS_PER_JOB)
        job_ids.append(job_id)
        key = str(job_id).encode()
        for event in events:
            if event.event_type == "JobSubmitted":
                topic = topics.jobs
            elif event.event_type == "ItemSubmitted":
                topic = topics.items("query")
            else:
                topic = topics.outcomes
            messages.append((topic, key, encode(event)))
    return messages, job_ids


def expected_counts() -> tuple[int, int]:
    failed = sum(1 for i in range(ITEMS_PER_JOB) if i % 5 == 3 or (i % 7 == 6))
    return ITEMS_PER_JOB - failed, failed


def assert_exact(engine, job_ids) -> None:
    success, failed = expected_counts()
    for job_id in job_ids:
        job = job_row(engine, job_id)
        assert job is not None and job["status"] == "completed", job
        assert (job["processed_items"], job["success_items"], job["failed_items"]) == (
            ITEMS_PER_JOB,
            success,
            failed,
        )
        assert job["started_at"] == f.at(1) and job["completed_at"] == f.at(
            1 + (ITEMS_PER_JOB - 1) * 0.1
        )
        items = item_statuses(engine, job_id)
        assert len(items) == ITEMS_PER_JOB
        assert sum(1 for i in items.values() if i["status"] == "success") == success
        assert all(i["input_data"] is not None for i in items.values())
    with engine.connect() as conn:
        results = conn.execute(
            text("SELECT count(*) FROM results WHERE job_id = ANY(:ids)"), {"ids": job_ids}
        ).scalar_one()
    assert results == len(job_ids)


def _wait_until_some_folded(engine, job_ids, at_least: int) -> None:
    def progress():
        with engine.connect() as conn:
            done = conn.execute(
                text("SELECT COALESCE(sum(processed_items), 0) FROM jobs WHERE id = ANY(:ids)"),
                {"ids": job_ids},
            ).scalar_one()
        return done >= at_least and done

    done = wait_for(progress, 60, f"{at_least} outcomes folded")
    assert done < JOBS * ITEMS_PER_JOB, "the backlog was folded before the interruption"


def test_kill_9_mid_backlog_then_restart_gives_exact_tables(kafka_settings, engine, processes):
    messages, job_ids = backlog(kafka_settings)
    asyncio.run(publish_many(kafka_settings, messages))
    projector = processes.start("projector", PROJECTOR_MAX_BATCH="500")
    _wait_until_some_folded(engine, job_ids, 2_000)
    projector.send_signal(signal.SIGKILL)
    projector.wait()
    processes.start("projector", PROJECTOR_MAX_BATCH="500")
    wait_fully_folded(engine, kafka_settings, 120)
    assert_exact(engine, job_ids)


def _local_cluster() -> list[str] | None:
    if not shutil.which("pg_lsclusters") or os.geteuid() != 0:
        return None
    lines = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=False
    ).stdout.split("\n")
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[3] == "online":
            return parts[:2]
    return None


def test_postgres_restart_while_folding_retries_and_ends_exact(
    kafka_settings, engine, processes, database_url
):
    cluster = _local_cluster()
    if cluster is None or ("127.0.0.1" not in database_url and "localhost" not in database_url):
        pytest.skip("needs the machine's own PostgreSQL cluster and root to restart it")
    messages, job_ids = backlog(kafka_settings)
    asyncio.run(publish_many(kafka_settings, messages))
    processes.start("projector", PROJECTOR_MAX_BATCH="500")
    _wait_until_some_folded(engine, job_ids, 2_000)
    subprocess.run(["pg_ctlcluster", *cluster, "restart", "-m", "fast"], check=True)
    engine.dispose()  # the test's own pooled connections died with the server
    wait_fully_folded(engine, kafka_settings, 120)
    assert_exact(engine, job_ids)
