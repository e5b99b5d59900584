"""Chaos: infrastructure faults in the middle of a 50,000-item job with a real handler
(``query``, which reads the registry in PostgreSQL). Every scenario ends with every item
exactly one terminal row, the counters equal to the rows, no item failed, the job completed;
and prints the time from the fault to throughput back at half its rate before it."""

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from batchctl.dev import kafka_broker
from batchctl.dev.settings import DevSettings
from events.codec import encode
from ingest_api.api_keys import create_key
from tests import factories as f
from tests.e2e.test_batchctl_run import _ready, free_port
from tests.integration.conftest import publish_many, wait_for, wait_fully_folded, wait_job
from tests.integration.test_poison_corpus import _batchctl, _rows, assert_both_replays_rebuild
from tests.integration.test_projector import _local_cluster

ITEMS = 50_000
FAULTED: set[uuid.UUID] = set()  # the jobs of the scenarios run, for the replays at the end


def _publish_job(settings: Any) -> uuid.UUID:
    topics = settings.topics
    job_id = uuid.uuid4()
    messages = [(topics.jobs, str(job_id).encode(), encode(f.job_submitted(job_id, ITEMS)))]
    messages += [
        (topics.items("query"), f"{job_id}:{i}".encode(), encode(f.item_submitted(job_id, i)))
        for i in range(ITEMS)
    ]
    asyncio.run(publish_many(settings, messages))
    return job_id


def _ended(engine: Any, job_id: uuid.UUID) -> int | None:
    """Items of the job with a terminal row, or None while the database does not answer."""
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM items WHERE job_id = :id AND status <> 'pending'"),
                    {"id": job_id},
                ).scalar_one()
            )
    except Exception:
        engine.dispose()
        return None


class Progress:
    """Samples a job's progress, to tell when throughput is back after a fault."""

    def __init__(self, engine: Any, job_id: uuid.UUID):
        self.engine, self.job_id = engine, job_id
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> int:
        ended = _ended(self.engine, self.job_id)
        if ended is not None:
            self.samples.append((time.monotonic(), ended))
        return ended or 0

    def rate(self, since: float, until: float) -> float:
        window = [(t, n) for t, n in self.samples if since <= t <= until]
        if len(window) < 2 or window[-1][0] == window[0][0]:
            return 0.0
        return (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])

    def wait_until(self, count: int, timeout_s: float) -> None:
        wait_for(lambda: self.sample() >= count, timeout_s, f"{count} items ended")

    def recovery_s(self, fault_at: float, rate_before: float, timeout_s: float = 240) -> float:
        """Seconds from the fault until a second's throughput is back at half the rate
        before it (or the job has ended)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sample()
            now = time.monotonic()
            if self.samples and self.samples[-1][1] >= ITEMS:
                return now - fault_at
            if now - fault_at > 1 and self.rate(now - 1.0, now) >= rate_before / 2:
                return now - fault_at
            time.sleep(0.2)
        raise AssertionError(f"throughput not back within {timeout_s:.0f}s of the fault")


def _assert_exact(engine: Any, job_id: uuid.UUID) -> None:
    job = wait_job(engine, job_id, 300, lambda j: j["status"] == "completed", "the job")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT item_index),"
                " count(*) FILTER (WHERE status = 'success'),"
                " count(*) FILTER (WHERE status = 'failed') FROM items WHERE job_id = :id"
            ),
            {"id": job_id},
        ).one()
    assert tuple(rows) == (ITEMS, ITEMS, ITEMS, 0), rows
    assert (job["processed_items"], job["success_items"], job["failed_items"]) == (ITEMS, ITEMS, 0)


def _scenario(
    name: str,
    engine: Any,
    kafka_settings: Any,
    processes: Any,
    fault: Callable[[uuid.UUID], None],
    **worker_env: str,
) -> None:
    job_id = _publish_job(kafka_settings)
    FAULTED.add(job_id)
    processes.start("projector")
    processes.start("worker", "--job-type", "query", **worker_env)
    progress = Progress(engine, job_id)
    progress.wait_until(ITEMS // 5, 120)
    before = time.monotonic()
    progress.wait_until(ITEMS // 4, 60)
    rate = progress.rate(before - 5, time.monotonic())
    fault_at = time.monotonic()
    fault(job_id)
    recovered = progress.recovery_s(fault_at, rate)
    print(
        f"\nchaos {name}: throughput back at half its rate ({rate:,.0f}/s) {recovered:.1f}s after"
    )
    _assert_exact(engine, job_id)


def _cluster_or_skip(database_url: str) -> list[str]:
    cluster = _local_cluster()
    if cluster is None or ("127.0.0.1" not in database_url and "localhost" not in database_url):
        pytest.skip("needs the machine's own PostgreSQL cluster and root to restart it")
    return cluster


def test_postgresql_restarted_in_immediate_mode(engine, kafka_settings, processes, database_url):
    cluster = _cluster_or_skip(database_url)

    def restart(job_id: uuid.UUID) -> None:
        subprocess.run(["pg_ctlcluster", *cluster, "restart", "-m", "immediate"], check=True)

    _scenario("postgresql restarted (immediate)", engine, kafka_settings, processes, restart)


def test_postgresql_stopped_for_20_seconds(engine, kafka_settings, processes, database_url):
    cluster = _cluster_or_skip(database_url)

    def stop_20s(job_id: uuid.UUID) -> None:
        subprocess.run(["pg_ctlcluster", *cluster, "stop", "-m", "immediate"], check=True)
        try:
            time.sleep(20)
        finally:
            subprocess.run(["pg_ctlcluster", *cluster, "start"], check=True)

    _scenario("postgresql stopped for 20s", engine, kafka_settings, processes, stop_20s)


def test_the_broker_killed_and_brought_back(engine, kafka_settings, processes):
    dev = DevSettings()
    servers = kafka_settings.kafka_bootstrap_servers
    if not kafka_broker.is_ours(dev, servers) or kafka_broker.running_pid(dev) is None:
        pytest.skip("needs the local broker of `batchctl dev up`, which this test kills")

    def kill_and_bring_back(job_id: uuid.UUID) -> None:
        pid = kafka_broker.running_pid(dev)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: kafka_broker.running_pid(dev) is None, 30, "the broker to die")
        # what `dev up` does for its own broker (tests/e2e/test_dev_up_recovery.py runs the
        # command itself; here it would rewrite the checkout's .dev/env)
        print(kafka_broker.start(dev))

    _scenario("broker killed (kill -9)", engine, kafka_settings, processes, kill_and_bring_back)


@pytest.mark.parametrize("part", ["worker", "projector"])
def test_a_part_killed_with_kill_9_and_started_again(engine, kafka_settings, processes, part):
    def kill_and_restart(job_id: uuid.UUID) -> None:
        victim = next(
            p for p in reversed(processes.running) if p.args[3] == part and p.poll() is None
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        if part == "worker":
            processes.start("worker", "--job-type", "query")
        else:
            processes.start("projector")

    _scenario(f"{part} killed (kill -9)", engine, kafka_settings, processes, kill_and_restart)


def test_workers_joining_and_leaving_with_sigterm_and_kill_9(engine, kafka_settings, processes):
    slow = {"WORKER_CONCURRENCY": "4"}  # (so that the job outlasts the churn)

    def churn(job_id: uuid.UUID) -> None:
        first = next(p for p in processes.running if p.args[3] == "worker")
        joined = [processes.start("worker", "--job-type", "query", **slow) for _ in range(2)]
        time.sleep(3)
        first.terminate()  # leaves cleanly: commits what is acknowledged
        assert first.wait(30) == 0
        time.sleep(1)
        joined[0].send_signal(signal.SIGKILL)  # leaves abruptly
        joined[0].wait()
        assert (_ended(engine, job_id) or 0) < ITEMS, "the job outran the churn"

    _scenario(
        "workers joining, leaving (SIGTERM, kill -9)",
        engine,
        kafka_settings,
        processes,
        churn,
        **slow,
    )


def test_the_api_killed_during_an_upload_and_the_upload_retried(engine, kafka_settings, processes):
    """An NDJSON upload cut by a kill -9 of the API; the client sends it again with the same
    Idempotency-Key once the API is back: one job, every item once."""
    with sessionmaker(engine)() as session:
        secret = create_key(session, user_id="chaos").secret
    port = free_port()
    processes.start("projector")
    processes.start("worker", "--job-type", "query")
    api = processes.start("api", "--port", str(port))
    wait_for(lambda: _ready(port), 60, "the API")
    headers = {
        "Authorization": f"Bearer {secret}",
        "Content-Type": "application/x-ndjson",
        "Idempotency-Key": f"chaos-{uuid.uuid4()}",
    }
    url = f"http://127.0.0.1:{port}/batch/jobs?job_type=query"
    lines = [b'{"content_hash": "%064x"}\n' % i for i in range(ITEMS)]

    def body(kill_at: int | None) -> Iterator[bytes]:
        for start in range(0, ITEMS, 1000):
            if kill_at is not None and start >= kill_at:
                api.send_signal(signal.SIGKILL)  # mid-upload
                api.wait()
                time.sleep(0.5)
            yield b"".join(lines[start : start + 1000])

    fault_at = time.monotonic()
    with pytest.raises(httpx.HTTPError):
        httpx.post(url, content=body(ITEMS // 3), headers=headers, timeout=60)
    processes.start("api", "--port", str(port))
    wait_for(lambda: _ready(port), 60, "the API again")
    response = httpx.post(url, content=body(None), headers=headers, timeout=120)
    assert response.status_code == 202, response.text
    accepted_s = time.monotonic() - fault_at
    print(f"\nchaos api killed during an upload: accepted again {accepted_s:.1f}s after")
    job_id = uuid.UUID(response.json()["batch_job_id"])
    FAULTED.add(job_id)
    _assert_exact(engine, job_id)
    again = httpx.post(url, content=body(None), headers=headers, timeout=120)
    assert again.status_code == 202 and again.json()["batch_job_id"] == str(job_id)


def test_postgresql_restarted_during_a_shadow_replay(
    engine, kafka_settings, processes, stack_env, database_url
):
    """The replay ends with a clear message (the live tables unchanged, or swapped whole),
    the live projector goes on, and the replay run again cleans up and swaps in the same
    tables."""
    cluster = _cluster_or_skip(database_url)
    if not FAULTED:
        pytest.skip("no scenario ran: nothing to replay")
    processes.start("projector")
    wait_fully_folded(engine, kafka_settings, 120)
    live = _rows(engine, FAULTED, of_mine=True)
    replay = subprocess.Popen(
        [sys.executable, "-m", "batchctl", "replay"],
        env=stack_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def shadow_schema() -> bool:
        with engine.connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT 1 FROM pg_namespace WHERE nspname LIKE 'replay%'")
                ).first()
            )

    wait_for(shadow_schema, 60, "the replay to build its tables")
    subprocess.run(["pg_ctlcluster", *cluster, "restart", "-m", "immediate"], check=True)
    engine.dispose()
    _, errors = replay.communicate(timeout=300)
    assert replay.returncode == 1, errors[-3000:]
    assert "interrupted" in errors and "run it again" in errors, errors[-3000:]
    assert "Traceback" not in errors, errors[-3000:]
    again = _batchctl(stack_env, "replay")
    assert again.returncode == 0 and "swapped in" in again.stdout, again.stderr
    wait_fully_folded(engine, kafka_settings, 120)
    assert _rows(engine, FAULTED, of_mine=True) == live
    with engine.connect() as conn:
        leftovers = conn.execute(
            text(
                "SELECT nspname FROM pg_namespace"
                " WHERE nspname LIKE 'replay%' OR nspname LIKE 'retired%'"
            )
        ).all()
    assert leftovers == []


def test_replays_after_the_faults_rebuild_the_same_tables(
    engine, kafka_settings, processes, stack_env
):
    """Last (file order): both kinds of replay, over the topics every scenario above wrote."""
    if not FAULTED:
        pytest.skip("no scenario ran")
    projector = processes.start("projector")
    live = assert_both_replays_rebuild(engine, kafka_settings, stack_env, projector, FAULTED)
    assert len(live["items"]) == ITEMS * len(FAULTED)
