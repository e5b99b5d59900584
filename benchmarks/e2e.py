"""End to end: N no-op items through the whole stack, against the seed's design.

Ours: on the local Kafka and PostgreSQL (fresh topics, a fresh database), starts the API, one
``noop`` worker and the projector as separate processes, submits N items through the REST
API as one streamed NDJSON upload, and waits until the job is ``completed`` in the tables.
Stages: the API accepting the upload (202), the worker (first to last outcome, from the
items' ``processed_at``), and the projector's lag behind the last outcome at the end.

The seed: ``benchmarks/seed_baseline.py`` (its ``create_batch_job`` + ``process_batch_job``
design on one ORM session) on the same PostgreSQL, at 2,000 items; ours is measured at 2,000
items too (latency included; the median of three runs), and ``speedup`` is ours over the
seed there.

Prints, last, a JSON line: ``items_per_s`` (ours, N items, end to end), per-stage rates,
peak RSS per process, ``baseline_items_per_s``, ``ours_items_per_s_at_2000``, ``speedup``.

    python benchmarks/e2e.py [--items N] [--compare-at 2000] [--skip-baseline] [--brokers 3]

With ``--brokers 3`` it also runs the N items on a replicated cluster of three local brokers
(topics with three copies, ``min.insync.replicas=2``) and reports its throughput beside the
one broker's (``replicated``). ``cpu_us_per_item``: each part's CPU per item over the run,
and PostgreSQL's and Kafka's (every process of them on this machine).
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from benchmarks.common import (
    cpu_s,
    free_port,
    fresh_settings,
    machine,
    peak_rss_mb,
    post_ndjson,
    replicated_cluster,
    scratch_database,
    service_cpu_s,
    services,
    wait_ready,
)
from benchmarks.seed_baseline import run_seed
from ingest_api.api_keys import create_key
from jobtypes.registry import job_types
from storage.engine import make_engine
from streaming.settings import KafkaSettings
from streaming.topics_admin import create_topics, delete_prefixed_topics

NOOP = "archive_jobs.noop:NoopHandler"
CHUNK = 10_000


def ndjson(items: int):  # type: ignore[no-untyped-def]
    for start in range(0, items, CHUNK):
        yield "".join(f'{{"n": {i}}}\n' for i in range(start, min(items, start + CHUNK))).encode()


class Stack:
    """The API, a noop worker and the projector, each its own process."""

    def __init__(self, env: dict[str, str], port: int):
        command = [sys.executable, "-m", "batchctl"]
        self.parts = {
            "api": subprocess.Popen([*command, "api", "--port", str(port)], env=env),
            "worker": subprocess.Popen([*command, "worker", "--job-type", "noop"], env=env),
            "projector": subprocess.Popen([*command, "projector"], env=env),
        }
        self.rss = dict.fromkeys(self.parts, 0.0)

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by each part, PostgreSQL and Kafka."""
        return {
            **{name: cpu_s(process.pid) for name, process in self.parts.items()},
            **service_cpu_s(),
        }

    def sample(self) -> None:
        for name, process in self.parts.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            self.rss[name] = max(self.rss[name], peak_rss_mb(process.pid))

    def stop(self) -> None:
        for process in self.parts.values():
            process.terminate()
        for process in self.parts.values():
            process.wait(30)


def run_ours(items: int, database_url: str, kafka: KafkaSettings | None = None) -> dict[str, Any]:
    settings = kafka or fresh_settings()
    asyncio.run(create_topics(settings, job_types()))  # the API publishes to every type's
    engine = make_engine(database_url, pool_size=1)
    with sessionmaker(engine)() as session:
        key = create_key(session, user_id="bench").secret
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "BATCH_TOPIC_PREFIX": settings.topic_prefix,
        "BATCH_TOPIC_REPLICATION": str(settings.topic_replication_factor),
        "DATABASE_URL": database_url,
        "BATCH_EXTRA_HANDLERS": NOOP,
        "LOG_LEVEL": "WARNING",
        "API_MAX_ITEMS_PER_REQUEST": str(max(items, 100_000)),
    }
    stack = Stack(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, check=stack.sample)
        time.sleep(2)  # the worker and projector join their groups
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600
        ) as http:
            cpu_before = stack.cpu_s()
            started = time.perf_counter()
            started_at = datetime.now(UTC)
            accepted_s, accepted = post_ndjson(http, "noop", ndjson(items))
            job_id = accepted["batch_job_id"]
        while True:
            with engine.connect() as conn:
                status = conn.execute(
                    text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id}
                ).scalar_one_or_none()
            if status == "completed":
                break
            stack.sample()
            time.sleep(0.02)
        total_s = time.perf_counter() - started
        cpu_after = stack.cpu_s()
        finished_at = datetime.now(UTC)
        stack.sample()
        with engine.connect() as conn:
            first, last, done = conn.execute(
                text(
                    "SELECT min(processed_at), max(processed_at), count(*) FROM items"
                    " WHERE job_id = :id AND status = 'success'"
                ),
                {"id": job_id},
            ).one()
        assert done == items, f"{done} of {items} items succeeded"
        worker_s = max((last - first).total_seconds(), 1e-3)
    finally:
        stack.stop()
        engine.dispose()
        asyncio.run(delete_prefixed_topics(settings))
    return {
        "items": items,
        "seconds": round(total_s, 2),
        "items_per_s": round(items / total_s),
        "stages": {
            "api_accept_items_per_s": round(items / accepted_s),
            "api_accept_s": round(accepted_s, 2),
            "worker_items_per_s": round(items / worker_s),
            "worker_s": round(worker_s, 2),
            # from the upload's start to the first outcome; from the last outcome to the
            # job seen completed in the tables (the projector's lag, plus a 20 ms poll)
            "first_outcome_s": round((first - started_at).total_seconds(), 2),
            "tail_s": round((finished_at - last).total_seconds(), 2),
        },
        "peak_rss_mb": stack.rss,
        # CPU per item of each stage over the run (PostgreSQL and Kafka: all of this
        # machine's, which run nothing else meanwhile)
        "cpu_us_per_item": {
            name: round((cpu_after[name] - cpu_before[name]) * 1e6 / items, 1) for name in cpu_after
        },
    }


def main(items: int, compare_at: int, baseline: bool, brokers: int = 1) -> dict[str, Any]:
    result: dict[str, Any] = {"benchmark": "e2e"}
    with scratch_database() as url:
        print(f"ours: {items:,} items ...", flush=True)
        ours = run_ours(items, url)
        print(json.dumps(ours), flush=True)
        if brokers > 1:
            with replicated_cluster(brokers) as kafka:
                print(
                    f"ours on {brokers} brokers, {kafka.topic_replication_factor} copies: "
                    f"{items:,} items ...",
                    flush=True,
                )
                replicated = run_ours(items, url, kafka)
            print(json.dumps(replicated), flush=True)
            result["replicated"] = {
                "brokers": brokers,
                "replication_factor": kafka.topic_replication_factor,
                "items_per_s": replicated["items_per_s"],
                "stages": replicated["stages"],
                "cpu_us_per_item": replicated["cpu_us_per_item"],
                # what replication costs in throughput, beside one broker in this run
                "cost": round(1 - replicated["items_per_s"] / ours["items_per_s"], 3),
            }
        # latency dominates a small job, and varies: the median of three runs
        smalls = []
        for run in range(3):
            print(f"ours: {compare_at:,} items (run {run + 1} of 3) ...", flush=True)
            smalls.append(run_ours(compare_at, url))
            print(json.dumps(smalls[-1]), flush=True)
        small = sorted(smalls, key=lambda r: r["items_per_s"])[1]
        result |= {
            "items": items,
            "items_per_s": ours["items_per_s"],
            "seconds": ours["seconds"],
            "stages": ours["stages"],
            "peak_rss_mb": ours["peak_rss_mb"],
            "cpu_us_per_item": ours["cpu_us_per_item"],
            "ours_items_per_s_at_2000": small["items_per_s"] if compare_at == 2000 else None,
            f"ours_items_per_s_at_{compare_at}": small["items_per_s"],
            f"ours_items_per_s_at_{compare_at}_runs": [r["items_per_s"] for r in smalls],
        }
        if baseline:
            print(f"the seed's design: {compare_at:,} items ...", flush=True)
            engine = make_engine(url, pool_size=1)
            seed_s = run_seed(engine, compare_at)
            engine.dispose()
            seed_rate = compare_at / seed_s
            result |= {
                "baseline_items_per_s": round(seed_rate, 1),
                "baseline_seconds": round(seed_s, 1),
                "speedup": round(small["items_per_s"] / seed_rate, 1),
            }
    result["machine"] = machine()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--compare-at", type=int, default=2_000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--brokers",
        type=int,
        default=1,
        help="also run on a replicated cluster of this many local brokers, in the same run",
    )
    args = parser.parse_args()
    os.environ["BATCH_EXTRA_HANDLERS"] = NOOP
    services()
    print(json.dumps(main(args.items, args.compare_at, not args.skip_baseline, args.brokers)))
