"""Projector throughput: fold N events from scratch into fresh tables.

Pre-loads N events (by default 500,000: one ItemSubmitted and one outcome per item, over
many jobs, plus one JobSubmitted per job; a tenth of the outcomes are failures) into fresh
topics, starts one ``batchctl projector`` (with ``--shards N``, then also N sharing the
partitions, in the same run) against a fresh database, and times it from its
first stored batch to the position at the end of every partition. Checks the tables at the
end (every job completed, counts exact). Prints, last, a JSON line with ``events_per_s`` and
the projector's ``peak_rss_mb``.

The records carry the times of their events, as a live pipeline writes them: a job, then
each item's submission followed by its outcome (workers keeping up). The projector reads in
event-time order, so it then writes most items once, with their outcome. ``--outcome-lag K``
stamps each outcome K items later (workers K items behind the submissions): with K past a
batch, no item's submission and outcome meet in a batch, and every item is written twice.

    python benchmarks/projector.py [--events N] [--items-per-job K] [--outcome-lag K] [--shards N]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from benchmarks.common import (
    fresh_database,
    fresh_settings,
    machine,
    peak_rss_mb,
    preload,
    services,
)
from events.codec import encode
from events.models import ItemFailed, ItemSubmitted, ItemSucceeded, JobSubmitted
from migrations.scratch import drop_database
from storage.engine import make_engine
from streaming.topics_admin import create_topics, delete_prefixed_topics


def events_for(settings, jobs: int, per_job: int) -> list[tuple[str, bytes, bytes]]:  # type: ignore[no-untyped-def]
    topics = settings.topics
    messages = []
    for _ in range(jobs):
        job_id = uuid.uuid4()
        key = str(job_id).encode()
        messages.append(
            (
                topics.jobs,
                key,
                encode(
                    JobSubmitted.new(
                        job_id=job_id, job_type="query", user_id="bench", total_items=per_job
                    )
                ),
            )
        )
        for i in range(per_job):
            item_key = f"{job_id}:{i}".encode()
            messages.append(
                (
                    topics.items("query"),
                    item_key,
                    encode(
                        ItemSubmitted.new(
                            job_id=job_id,
                            item_index=i,
                            job_type="query",
                            input={"content_hash": f"{i:064x}"},
                        )
                    ),
                )
            )
            if i % 10 == 3:
                outcome = ItemFailed.new(
                    job_id=job_id,
                    item_index=i,
                    attempts=3,
                    duration_ms=1.5,
                    error_code="bad_signature",
                    error_message="signature does not verify",
                )
            else:
                outcome = ItemSucceeded.new(
                    job_id=job_id, item_index=i, duration_ms=0.25, output={"found": False}
                )
            messages.append((topics.outcomes, key, encode(outcome)))
    return messages


LOG_EVENTS_PER_MS = 50  # the pace of the pipeline that wrote the log


def stamps_for(
    messages: list[tuple[str, bytes, bytes]], outcomes: str, lag_items: int
) -> list[int]:
    """A timestamp per message, in the order of the list; outcomes ``lag_items`` later."""
    start = int(time.time() * 1000) - (len(messages) + 2 * lag_items) // LOG_EVENTS_PER_MS - 1
    return [
        start + (n + (2 * lag_items if topic == outcomes else 0)) // LOG_EVENTS_PER_MS
        for n, (topic, _, _) in enumerate(messages)
    ]


def folded(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COALESCE(sum(next_offset), 0) FROM projection_checkpoints")
            ).scalar_one()
        )


def run(events: int, per_job: int, outcome_lag: int, shards: int = 1) -> dict:  # type: ignore[type-arg]
    settings = fresh_settings()
    asyncio.run(create_topics(settings, ["query"]))
    jobs = max(1, events // (2 * per_job + 1))
    messages = events_for(settings, jobs, per_job)
    total = len(messages)
    print(f"pre-loading {total} events ({jobs} jobs x {per_job} items) ...", flush=True)
    started = time.perf_counter()
    stamps = stamps_for(messages, settings.topics.outcomes, outcome_lag)
    asyncio.run(preload(settings, messages, stamps))
    del stamps
    del messages
    print(f"pre-loaded in {time.perf_counter() - started:.1f}s", flush=True)
    server_url = os.environ["DATABASE_URL"]
    url = fresh_database(server_url)
    engine = make_engine(url, pool_size=1)
    env = {
        **os.environ,
        "BATCH_TOPIC_PREFIX": settings.topic_prefix,
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "batchctl", "projector"]
    projectors = [subprocess.Popen(command, env=env) for _ in range(shards)]
    rss = 0.0
    try:
        first_at = None
        while True:
            done = folded(engine)
            now = time.perf_counter()
            if done and first_at is None:
                first_at, first_done = now, done
            if done >= total:
                break
            for projector in projectors:
                if projector.poll() is not None:
                    raise RuntimeError(f"a projector exited with {projector.returncode}")
                rss = max(rss, peak_rss_mb(projector.pid))
            time.sleep(0.05)
        elapsed = now - first_at
        rss = max(rss, *(peak_rss_mb(projector.pid) for projector in projectors))
        with engine.connect() as conn:
            check = conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE status = 'completed'), sum(processed_items),"
                    " sum(failed_items), (SELECT count(*) FROM results) FROM jobs"
                )
            ).one()
        assert tuple(check) == (jobs, jobs * per_job, jobs * len(range(3, per_job, 10)), jobs), (
            check
        )
    finally:
        for projector in projectors:
            projector.terminate()
        for projector in projectors:
            projector.wait(30)
        engine.dispose()
        drop_database(server_url, url)
        asyncio.run(delete_prefixed_topics(settings))
    measured = total - first_done
    return {
        "benchmark": "projector",
        "events": total,
        "seconds": round(elapsed, 2),
        "events_per_s": round(measured / elapsed),
        "peak_rss_mb": rss,
        "jobs": jobs,
        "items_per_job": per_job,
        "outcome_lag": outcome_lag,
        "shards": shards,
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--items-per-job", type=int, default=1000)
    parser.add_argument("--outcome-lag", type=int, default=0, metavar="ITEMS")
    parser.add_argument(
        "--shards", type=int, default=1, help="also fold with this many projector processes"
    )
    args = parser.parse_args()
    services()
    result = run(args.events, args.items_per_job, args.outcome_lag)
    if args.shards > 1:  # beside one projector, in the same run
        print(json.dumps(result), flush=True)
        sharded = run(args.events, args.items_per_job, args.outcome_lag, args.shards)
        result["sharded"] = {
            key: sharded[key] for key in ("shards", "events_per_s", "seconds", "peak_rss_mb")
        }
    print(json.dumps(result))
