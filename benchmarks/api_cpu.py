"""The API's CPU per accepted item, with nothing else of the stack running: one API process,
``--uploads`` NDJSON uploads of ``--items`` no-op items each (after one to warm up); the
process's CPU time (user + system, from /proc) per item, and items/s, of each upload.

    python benchmarks/api_cpu.py [--items 100000] [--uploads 5]
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy.orm import sessionmaker

from benchmarks.common import (
    cpu_seconds,
    free_port,
    fresh_settings,
    machine,
    scratch_database,
    services,
    wait_ready,
)
from ingest_api.api_keys import create_key
from jobtypes.registry import job_types
from storage.engine import make_engine
from streaming.topics_admin import create_topics, delete_prefixed_topics

NOOP = "archive_jobs.noop:NoopHandler"


def run(items: int, uploads: int, database_url: str) -> dict[str, Any]:
    settings = fresh_settings()
    asyncio.run(create_topics(settings, job_types()))
    engine = make_engine(database_url, pool_size=1)
    with sessionmaker(engine)() as session:
        # a user of its own: earlier runs' items, never served, fill no quota of this one
        key = create_key(session, user_id=f"bench-{uuid.uuid4().hex[:8]}").secret
    port = free_port()
    env = {
        **os.environ,
        "BATCH_TOPIC_PREFIX": settings.topic_prefix,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "API_MAX_QUEUED_ITEMS_PER_USER": str(10 * items * (uploads + 1)),
    }
    api = subprocess.Popen([sys.executable, "-m", "batchctl", "api", "--port", str(port)], env=env)
    body = "".join(f'{{"n": {i}}}\n' for i in range(items)).encode()
    cpu_us, rates = [], []
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"},
            timeout=600,
        ) as http:
            for n in range(uploads + 1):
                cpu, started = cpu_seconds(api.pid), time.perf_counter()
                response = http.post("/batch/jobs?job_type=noop", content=body)
                assert response.status_code == 202, response.text
                if n:  # (the first warms up)
                    cpu_us.append((cpu_seconds(api.pid) - cpu) / items * 1e6)
                    rates.append(items / (time.perf_counter() - started))
    finally:
        api.terminate()
        api.wait(30)
        engine.dispose()
        asyncio.run(delete_prefixed_topics(settings))
    return {
        "items": items,
        "uploads": uploads,
        "api_cpu_us_per_item": round(statistics.median(cpu_us), 2),
        "api_cpu_us_per_item_runs": sorted(round(c, 2) for c in cpu_us),
        "items_per_s": round(statistics.median(rates)),
    }


def main(items: int, uploads: int) -> dict[str, Any]:
    with scratch_database() as url:
        result = {"benchmark": "api_cpu", **run(items, uploads, url)}
    result["machine"] = machine()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--uploads", type=int, default=5)
    args = parser.parse_args()
    os.environ["BATCH_EXTRA_HANDLERS"] = NOOP  # (before anything reads the job types)
    services()
    print(json.dumps(main(args.items, args.uploads)))
