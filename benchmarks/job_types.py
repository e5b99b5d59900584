"""Throughput of each registry job type through ONE worker process, with real keys.

Enrolls D devices (``enrollment``), locks N proofs signed by them (``proof_lock``: every
signature verified), then runs N queries (``query``: by content hash, proof id and device),
each job type through one ``batchctl worker`` on its own fresh topics, pre-loaded; times
from a worker's first outcome to its last (handled, the registry written and committed, the
outcome acknowledged by Kafka). Prints, last, a JSON line with ``items_per_s`` per job type.
The benchmark's registry rows are deleted at the end.

    python benchmarks/job_types.py [--devices D] [--items N] [--concurrency C]
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import text

from archive_jobs.proof_lock import proof_id
from benchmarks.common import count_outcomes, fresh_settings, machine, peak_rss_mb, preload
from benchmarks.common import services as local_services
from events.codec import encode
from events.models import ItemSubmitted
from storage.engine import make_engine
from storage.settings import DatabaseSettings
from streaming.topics_admin import create_topics, delete_prefixed_topics


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def run_one_worker(
    job_type: str,
    job_id: uuid.UUID,
    inputs: list[dict[str, Any]],
    keys: list[str],
    concurrency: int,
) -> dict[str, Any]:
    settings = fresh_settings()
    await create_topics(settings, [job_type])
    topic = settings.topics.items(job_type)
    messages = [
        (
            topic,
            key.encode(),
            encode(ItemSubmitted.new(job_id=job_id, item_index=i, job_type=job_type, input=item)),
        )
        for i, (item, key) in enumerate(zip(inputs, keys, strict=True))
    ]
    await preload(settings, messages)
    env = {
        **os.environ,
        "BATCH_TOPIC_PREFIX": settings.topic_prefix,
        "LOG_LEVEL": os.environ.get("BENCH_WORKER_LOG_LEVEL", "WARNING"),
        "WORKER_CONCURRENCY": str(concurrency),
    }
    profile = os.environ.get("BENCH_PROFILE")  # a cProfile output file per job type
    profiling = ["-m", "cProfile", "-o", f"{profile}.{job_type}"] if profile else []
    worker = subprocess.Popen(
        [sys.executable, *profiling, "-m", "batchctl", "worker", "--job-type", job_type], env=env
    )
    try:
        first, last, seen, _ = await count_outcomes(settings, len(messages), worker)
        rss = peak_rss_mb(worker.pid)
    finally:
        worker.terminate()
        worker.wait(30)
        await delete_prefixed_topics(settings)
    elapsed = last - first
    result = {
        "items": seen,
        "seconds": round(elapsed, 2),
        "items_per_s": round(seen / elapsed) if elapsed else None,
        "peak_rss_mb": rss,
    }
    print(f"{job_type}: {json.dumps(result)}", flush=True)
    return result


async def main(devices: int, items: int, concurrency: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    print(f"generating {devices} keys and {items} signatures ...", flush=True)
    keys = [Ed25519PrivateKey.generate() for _ in range(devices)]
    device_ids = [f"bench-{tag}-{n}" for n in range(devices)]
    enrollments = [
        {
            "device_id": device_id,
            "public_key": b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
            "platform": "bench",
        }
        for device_id, key in zip(device_ids, keys, strict=True)
    ]
    hashes = [hashlib.sha256(f"{tag}/{n}".encode()).hexdigest() for n in range(items)]
    locks = [
        {
            "device_id": device_ids[n % devices],
            "content_hash": h,
            "signature": b64(keys[n % devices].sign(bytes.fromhex(h))),
        }
        for n, h in enumerate(hashes)
    ]
    lock_job = uuid.uuid4()
    queries: list[dict[str, Any]] = []
    for n in range(items):
        kind = n % 3
        if kind == 0:
            queries.append({"content_hash": hashes[(n * 7919) % items]})
        elif kind == 1:
            queries.append({"proof_id": str(proof_id(lock_job, (n * 7919) % items))})
        else:
            queries.append({"device_id": device_ids[n % devices]})

    jobs = {"enrollment": uuid.uuid4(), "proof_lock": lock_job, "query": uuid.uuid4()}
    results = {}
    try:
        results["enrollment"] = await run_one_worker(
            "enrollment", jobs["enrollment"], enrollments, device_ids, concurrency
        )
        results["proof_lock"] = await run_one_worker(
            "proof_lock", lock_job, locks, [lock["content_hash"] for lock in locks], concurrency
        )
        results["query"] = await run_one_worker(
            "query",
            jobs["query"],
            queries,
            [f"{jobs['query']}:{n}" for n in range(items)],
            concurrency,
        )
    finally:
        engine = make_engine(DatabaseSettings().database_url, pool_size=1)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM proofs WHERE job_id = :j"), {"j": lock_job})
            conn.execute(text("DELETE FROM devices WHERE job_id = :j"), {"j": jobs["enrollment"]})
        engine.dispose()
    return {
        "benchmark": "job_types",
        "devices": devices,
        "items": items,
        "concurrency": concurrency,
        "items_per_s": {job_type: r["items_per_s"] for job_type, r in results.items()},
        "seconds": {job_type: r["seconds"] for job_type, r in results.items()},
        "peak_rss_mb": {job_type: r["peak_rss_mb"] for job_type, r in results.items()},
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=2048)
    args = parser.parse_args()
    local_services()
    print(json.dumps(asyncio.run(main(args.devices, args.items, args.concurrency))))
