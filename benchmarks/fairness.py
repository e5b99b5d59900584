"""Fair share between users: while one user's bulk job runs, how long does another user's
small job take, and what does serving it first cost the bulk job?

One run: the API, a ``query`` worker (the registry read in PostgreSQL for every item) and the
projector, each its own process. User A uploads a large ``query`` job (NDJSON, no priority:
the bulk lane by its size). Its throughput is measured alone for ``--alone-s``; then user B
submits a 10-item job every second for ``--small-for-s`` (no priority: the interactive lane
by its size), each polled until ``completed``; A's throughput is measured over the same
window (its outcomes written to the bulk lane's topic). Prints p50/p99 of B's jobs' time from
submission to ``completed`` (polled every 50 ms) and A's throughput with B's jobs against
alone (the mean of a window before and one after theirs, so that drift does not count).

    python benchmarks/fairness.py [--items 3000000] [--alone-s 20] [--small-for-s 60]

The bulk job must outlast both windows: on two cores a ``query`` worker does ~26,000
items/s, so a 1,000,000-item job is done in under 40 s; the default is 3,000,000.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from benchmarks.common import (
    free_port,
    fresh_settings,
    machine,
    post_ndjson,
    scratch_database,
    services,
    wait_ready,
)
from ingest_api.api_keys import create_key
from jobtypes.registry import job_types
from storage.engine import make_engine
from streaming.clients import make_consumer, topic_partitions
from streaming.topics_admin import create_topics, delete_prefixed_topics

CHUNK = 10_000
SMALL_ITEMS = 10


def query_items(start: int, count: int) -> bytes:
    return "".join(
        f'{{"content_hash": "{i:064x}"}}\n' for i in range(start, start + count)
    ).encode()


def ndjson(items: int):  # type: ignore[no-untyped-def]
    for start in range(0, items, CHUNK):
        yield query_items(start, min(CHUNK, items - start))


def processed(engine: Any, job_id: str) -> tuple[int, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT processed_items, status FROM jobs WHERE id = :id"), {"id": job_id}
        ).first()
    return (0, None) if row is None else (int(row[0]), str(row[1]))


def outcomes_so_far(settings: Any, topic: str) -> int:
    """The records in ``topic`` now: the bulk lane's outcomes, as the worker writes them (the
    jobs table would measure the projector's catching up with the upload instead)."""

    async def count() -> int:
        consumer = make_consumer(settings, group_id=None)
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, lambda name: name == topic)
            return sum((await consumer.end_offsets(tps)).values())
        finally:
            await consumer.stop()

    return asyncio.run(count())


def rate_over(settings: Any, engine: Any, job_id: str, seconds: float) -> float:
    """The bulk job's items/s over the next ``seconds``: its outcomes written."""
    topic = settings.topics.outcomes
    before = outcomes_so_far(settings, topic)
    started = time.perf_counter()
    time.sleep(seconds)
    after = outcomes_so_far(settings, topic)
    elapsed = time.perf_counter() - started
    _, status = processed(engine, job_id)
    if status != "processing":
        raise RuntimeError(f"the bulk job was {status} before the window ended: use more items")
    return (after - before) / elapsed


def small_job(base: str, key: str, latencies: list[float], errors: list[str]) -> None:
    """Submit one small job and wait for it to complete; its time goes to ``latencies``."""
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
        items = [{"content_hash": f"{n:064x}"} for n in range(SMALL_ITEMS)]
        started = time.perf_counter()
        response = http.post("/batch/jobs", json={"job_type": "query", "items": items})
        if response.status_code != 202:
            errors.append(f"{response.status_code}: {response.text[:200]}")
            return
        job = response.json()["batch_job_id"]
        deadline = started + 120
        while time.perf_counter() < deadline:
            status = http.get(f"/batch/jobs/{job}").json()["status"]
            if status == "completed":
                latencies.append(time.perf_counter() - started)
                return
            time.sleep(0.05)  # (a client polling; its requests cost the others too)
        errors.append(f"job {job} not completed within 120s")


def run(items: int, alone_s: float, small_for_s: float, database_url: str) -> dict[str, Any]:
    settings = fresh_settings()
    asyncio.run(create_topics(settings, job_types()))
    engine = make_engine(database_url, pool_size=2)
    with sessionmaker(engine)() as session:
        bulk_key = create_key(session, user_id="bulk-user").secret
        small_key = create_key(session, user_id="small-user").secret
    port = free_port()
    env = {
        **os.environ,
        "BATCH_TOPIC_PREFIX": settings.topic_prefix,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "WORKER_CONCURRENCY": "2048",  # (a registry-backed type: many items in flight)
    }
    command = [sys.executable, "-m", "batchctl"]
    parts = [
        subprocess.Popen([*command, "api", "--port", str(port)], env=env),
        subprocess.Popen([*command, "worker", "--job-type", "query"], env=env),
        subprocess.Popen([*command, "projector"], env=env),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        time.sleep(2)  # the worker and projector join their groups
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {bulk_key}"}, timeout=600
        ) as http:
            accepted_s, accepted = post_ndjson(http, "query", ndjson(items))
        bulk = accepted["batch_job_id"]
        print(f"bulk job of {items:,} items accepted in {accepted_s:.1f}s", flush=True)
        time.sleep(3)  # under way
        alone = rate_over(settings, engine, bulk, alone_s)
        print(f"bulk alone: {alone:,.0f} items/s", flush=True)
        latencies: list[float] = []
        errors: list[str] = []
        threads: list[threading.Thread] = []
        shared: list[float] = []
        window = threading.Thread(
            target=lambda: shared.append(rate_over(settings, engine, bulk, small_for_s))
        )
        window.start()
        started = time.perf_counter()
        for n in range(int(small_for_s)):
            time.sleep(max(0.0, started + n - time.perf_counter()))
            thread = threading.Thread(target=small_job, args=(base, small_key, latencies, errors))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        window.join()
        if not shared:
            raise RuntimeError("the bulk job ended within the window: use more --items")
        with_small = shared[0]
        after = rate_over(settings, engine, bulk, alone_s)  # alone again: the drift between
        print(f"bulk alone again: {after:,.0f} items/s", flush=True)
        done, _ = processed(engine, bulk)
    finally:
        for part in parts:
            part.terminate()
        for part in parts:
            part.wait(30)
        engine.dispose()
        asyncio.run(delete_prefixed_topics(settings))
    if errors:
        raise RuntimeError(f"{len(errors)} small jobs failed: {errors[:3]}")
    latencies.sort()
    return {
        "items": items,
        "small_jobs": len(latencies),
        "small_job_s_p50": round(statistics.median(latencies), 3),
        "small_job_s_p99": round(latencies[max(0, round(0.99 * len(latencies)) - 1)], 3),
        "small_job_s_max": round(latencies[-1], 3),
        "bulk_items_per_s_alone": round((alone + after) / 2),
        "bulk_items_per_s_alone_before_after": [round(alone), round(after)],
        "bulk_items_per_s_with_small_jobs": round(with_small),
        "bulk_share_kept": round(2 * with_small / (alone + after), 3),
        "bulk_processed_at_end": done,
    }


def main(items: int, alone_s: float, small_for_s: float) -> dict[str, Any]:
    with scratch_database() as url:
        result = {"benchmark": "fairness", **run(items, alone_s, small_for_s, url)}
    result["machine"] = machine()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3_000_000)
    parser.add_argument("--alone-s", type=float, default=20)
    parser.add_argument("--small-for-s", type=float, default=60)
    args = parser.parse_args()
    services()
    print(json.dumps(main(args.items, args.alone_s, args.small_for_s)))
