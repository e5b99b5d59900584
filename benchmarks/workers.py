"""Worker throughput: N no-op items through ONE worker process on the local broker.

Pre-loads N ``ItemSubmitted`` events into a fresh items topic, starts one
``batchctl worker --job-type noop`` process, and times from its first outcome to its N-th
(consumed, handled, published and acknowledged by Kafka). Prints, last, a JSON line with
``items_per_s``, the worker's CPU time per item (``worker_cpu_us_per_item``: steadier than
the rate on a shared machine) and its ``peak_rss_mb``.

    python benchmarks/workers.py [--items N] [--concurrency C]
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

from benchmarks.common import (
    count_outcomes,
    fresh_settings,
    machine,
    peak_rss_mb,
    preload,
    services,
)
from events.codec import encode
from events.models import ItemSubmitted
from streaming.topics_admin import create_topics, delete_prefixed_topics

NOOP = "archive_jobs.noop:NoopHandler"


async def main(items: int, concurrency: int) -> dict:  # type: ignore[type-arg]
    os.environ["BATCH_EXTRA_HANDLERS"] = NOOP
    settings = fresh_settings()
    await create_topics(settings, ["noop"])
    job_id = uuid.uuid4()
    topic = settings.topics.items("noop")
    print(f"pre-loading {items} items into {topic} ...", flush=True)
    started = time.perf_counter()
    messages = [
        (
            topic,
            f"{job_id}:{i}".encode(),
            encode(ItemSubmitted.new(job_id=job_id, item_index=i, job_type="noop", input={"n": i})),
        )
        for i in range(items)
    ]
    await preload(settings, messages)
    del messages
    print(f"pre-loaded in {time.perf_counter() - started:.1f}s; starting one worker", flush=True)
    env = {
        **os.environ,
        "BATCH_TOPIC_PREFIX": settings.topic_prefix,
        "LOG_LEVEL": "WARNING",
        "WORKER_CONCURRENCY": str(concurrency),
    }
    profile = (
        ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]]
        if os.environ.get("BENCH_PROFILE")
        else []
    )
    worker = subprocess.Popen(
        [sys.executable, *profile, "-m", "batchctl", "worker", "--job-type", "noop"], env=env
    )
    try:
        first, last, seen, cpu_s = await count_outcomes(settings, items, worker)
        rss = peak_rss_mb(worker.pid)
    finally:
        worker.terminate()
        worker.wait(30)
        await delete_prefixed_topics(settings)
    elapsed = last - first
    return {
        "benchmark": "workers",
        "items": seen,
        "seconds": round(elapsed, 2),
        "items_per_s": round(seen / elapsed) if elapsed else None,
        "worker_cpu_us_per_item": round(cpu_s / seen * 1e6, 1) if seen else None,
        "peak_rss_mb": rss,
        "concurrency": concurrency,
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    services()
    print(json.dumps(asyncio.run(main(args.items, args.concurrency))))
