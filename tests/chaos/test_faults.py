"""Chaos: infrastructure faults in the middle of a 50,000-item job with a real handler
(``query``, which reads the registry in PostgreSQL). Every scenario ends with every item
exactly one terminal row, the counters equal to the rows, no item failed, the job completed;
and prints the time from the fault to throughput back at half its rate before it."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
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


class ApiWatch:
    """An API process asked, all through a fault, whether it is ready, for a job of its user
    and to accept a small one: what a client and a load balancer see."""

    def __init__(self, engine: Any, processes: Any):
        with sessionmaker(engine)() as session:
            secret = create_key(session, user_id="chaos-watch").secret
        port = free_port()
        processes.start("api", "--port", str(port))
        wait_for(lambda: _ready(port), 60, "the API")
        self.api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
        self.job = self._submit().json()["batch_job_id"]
        self.answers: list[tuple[float, str, int, dict[str, Any], str | None]] = []
        self.fault: tuple[float, float] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ask, daemon=True)
        self._thread.start()

    def _submit(self) -> httpx.Response:
        body = {"job_type": "query", "items": [{"content_hash": f"{7:064x}"}]}
        return self.api.post("/batch/jobs", json=body)

    def _ask(self) -> None:
        while not self._stop.is_set():
            for name, ask in (
                ("readyz", lambda: self.api.get("/readyz")),
                ("get job", lambda: self.api.get(f"/batch/jobs/{self.job}")),
                ("submit", self._submit),
            ):
                try:
                    response = ask()
                    answer = (response.status_code, response.json(), response.headers)
                except (httpx.HTTPError, ValueError) as exc:  # (0: no answer, or not JSON)
                    answer = (0, {"exception": repr(exc)}, httpx.Headers())
                code, body, headers = answer
                retry_after = headers.get("Retry-After")
                self.answers.append((time.monotonic(), name, code, body, retry_after))
            time.sleep(0.2)

    def during(self, fault: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            fault()
        finally:
            self.fault = (started, time.monotonic())

    def settle(self, timeout_s: float = 60) -> float:
        """Stops asking once the API is ready and accepts jobs again; seconds from the
        fault's end."""
        assert self.fault is not None
        end = self.fault[1]

        def back() -> bool:
            late = [a for a in self.answers if a[0] > end]
            return any(n == "readyz" and c == 200 for _, n, c, _, _ in late) and any(
                n == "submit" and c == 202 for _, n, c, _, _ in late
            )

        wait_for(back, timeout_s, "the API ready and accepting jobs again")
        self._stop.set()
        self._thread.join(60)
        return max(t for t, n, c, _, _ in self.answers if n == "submit" and c == 202) - end

    def assert_degraded_well(self, down: str, reads_answered: bool) -> None:
        """Every answer was a success or a 503 with Retry-After and a JSON reason (never a
        500, never a hang: each answered within the client's timeout); while ``down`` was
        down, /readyz named it and only it."""
        assert self.fault is not None
        for _, name, code, body, retry_after in self.answers:
            assert code in (200, 202, 503), (name, code, body)
            if code == 503 and name == "readyz":
                assert body["status"] == "not ready", body
            elif code == 503:
                assert retry_after is not None and body.get("error"), (name, body)
        started, ended = self.fault
        during = [a for a in self.answers if started + 1 < a[0] < ended]
        readyz = [body for _, n, c, body, _ in during if n == "readyz" and c == 503]
        assert readyz, "the fault never showed in /readyz"
        up = {"postgres": "kafka", "kafka": "postgres"}[down]
        for body in readyz:
            assert body[down].startswith("unreachable") and body[up] == "ok", body
        assert any(n == "submit" and c == 503 for _, n, c, _, _ in during)
        if reads_answered:
            reads = [c for _, n, c, _, _ in during if n == "get job"]
            assert reads and set(reads) == {200}, reads


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
    watch: ApiWatch | None = None,
    worker_env: dict[str, str] | None = None,
    fault_between: tuple[float, float] = (0.15, 0.6),
) -> float:
    job_id = _publish_job(kafka_settings)
    FAULTED.add(job_id)
    processes.start("projector")
    processes.start("worker", "--job-type", "query", **(worker_env or {}))
    progress = Progress(engine, job_id)
    progress.wait_until(ITEMS // 10, 120)
    before = time.monotonic()
    progress.wait_until(ITEMS * 15 // 100, 60)
    rate = progress.rate(before - 5, time.monotonic())
    at = random.uniform(*fault_between)  # a random point of the job
    progress.wait_until(int(ITEMS * at), 120)
    print(f"\nchaos {name}: the fault at {at:.0%} of the job")
    fault_at = time.monotonic()
    if watch is None:
        fault(job_id)
    else:
        watch.during(lambda: fault(job_id))
    recovered = progress.recovery_s(fault_at, rate)
    print(f"chaos {name}: throughput back at half its rate ({rate:,.0f}/s) {recovered:.1f}s after")
    if watch is not None:
        print(f"chaos {name}: the API ready and accepting again {watch.settle():.1f}s after")
    _assert_exact(engine, job_id)
    return recovered


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

    watch = ApiWatch(engine, processes)
    _scenario("postgresql stopped for 20s", engine, kafka_settings, processes, stop_20s, watch)
    watch.assert_degraded_well("postgres", reads_answered=False)


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
        time.sleep(20)  # away for a while: every client's retries, then new sessions
        # what `dev up` does for its own broker (tests/e2e/test_dev_up_recovery.py runs the
        # command itself; here it would rewrite the checkout's .dev/env)
        print(kafka_broker.start(dev))

    watch = ApiWatch(engine, processes)
    _scenario(
        "broker killed (kill -9)", engine, kafka_settings, processes, kill_and_bring_back, watch
    )
    watch.assert_degraded_well("kafka", reads_answered=True)


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
        worker_env=slow,
        fault_between=(0.15, 0.3),  # (the churn takes a few seconds)
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
    kill_at = random.randrange(ITEMS // 10, ITEMS * 9 // 10, 1000)  # a random point of it
    print(f"\nchaos api killed during an upload: at line {kill_at:,} of {ITEMS:,}")
    with pytest.raises(httpx.HTTPError):
        httpx.post(url, content=body(kill_at), headers=headers, timeout=60)
    processes.start("api", "--port", str(port))
    wait_for(lambda: _ready(port), 60, "the API again")
    response = httpx.post(url, content=body(None), headers=headers, timeout=120)
    assert response.status_code == 202, response.text
    accepted_s = time.monotonic() - fault_at
    print(f"chaos api killed during an upload: accepted again {accepted_s:.1f}s after")
    job_id = uuid.UUID(response.json()["batch_job_id"])
    FAULTED.add(job_id)
    _assert_exact(engine, job_id)
    again = httpx.post(url, content=body(None), headers=headers, timeout=120)
    assert again.status_code == 202 and again.json()["batch_job_id"] == str(job_id)


def _replay_builds_its_tables(engine: Any) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname LIKE 'replay%'")).first()
        )


def _replay_inside_its_swap(engine: Any) -> bool:
    """The replay's swap transaction waits on the lock the test holds: the tables are moved
    (``ALTER TABLE … SET SCHEMA`` done), the epoch not yet bumped, nothing committed."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT 1 FROM pg_locks WHERE NOT granted"
                    " AND relation = 'projection_state'::regclass"
                )
            ).first()
        )


@pytest.mark.parametrize("moment", ["while it folds", "inside its swap transaction"])
def test_postgresql_restarted_during_a_shadow_replay(
    engine, kafka_settings, processes, stack_env, database_url, moment
):
    """The replay ends with a clear message (the live tables unchanged, or swapped whole),
    the live projector goes on, and the replay run again cleans up and swaps in the same
    tables. "Inside its swap transaction": the test holds a lock the swap's last statement
    needs, so that the restart lands after the tables were moved and before the commit."""
    cluster = _cluster_or_skip(database_url)
    if not FAULTED:
        pytest.skip("no scenario ran: nothing to replay")
    processes.start("projector")
    wait_fully_folded(engine, kafka_settings, 120)
    live = _rows(engine, FAULTED, of_mine=True)
    blocker = engine.connect()
    if moment == "inside its swap transaction":
        blocker.execute(text("LOCK TABLE projection_state IN SHARE MODE"))
    replay = subprocess.Popen(
        [sys.executable, "-m", "batchctl", "replay"],
        env=stack_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if moment == "while it folds":
            wait_for(lambda: _replay_builds_its_tables(engine), 60, "the replay's tables")
        else:
            wait_for(lambda: _replay_inside_its_swap(engine), 300, "the replay's swap")
        subprocess.run(["pg_ctlcluster", *cluster, "restart", "-m", "immediate"], check=True)
    finally:
        blocker.invalidate()
        engine.dispose()
    _, errors = replay.communicate(timeout=300)
    assert replay.returncode == 1, errors[-3000:]
    assert "interrupted" in errors and "run it again" in errors, errors[-3000:]
    assert "the live tables are unchanged" in errors, errors[-3000:]
    assert "Traceback" not in errors, errors[-3000:]
    wait_fully_folded(engine, kafka_settings, 120)  # the live projector goes on
    assert _rows(engine, FAULTED, of_mine=True) == live
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
