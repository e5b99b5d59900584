"""CPU of one small authenticated request: the API process's and PostgreSQL's, per request.

Starts one ``batchctl api`` on the local services (a fresh database), warms it up, then
sends N ``GET /batch/jobs?limit=1`` one after another with a key of its own (its rate limit
raised out of the way) and divides each side's CPU over them by N. Every request finds its
key and takes a rate-limit token (one statement), then reads a page of jobs.

    python benchmarks/request_cpu.py [--requests N]
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy.orm import sessionmaker

from benchmarks.common import (
    cpu_s,
    free_port,
    machine,
    scratch_database,
    service_cpu_s,
    services,
    wait_ready,
)
from ingest_api.api_keys import create_key
from storage.engine import make_engine


def main(requests: int) -> dict[str, object]:
    with scratch_database() as url:
        engine = make_engine(url, pool_size=1)
        with sessionmaker(engine)() as session:
            key = create_key(session, user_id=f"cpu-{uuid.uuid4().hex[:8]}").secret
        engine.dispose()
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "LOG_LEVEL": "WARNING",
            "API_RATE_LIMIT_PER_S": "1000000",
            "API_RATE_LIMIT_BURST": "1000000",
        }
        api = subprocess.Popen(
            [sys.executable, "-m", "batchctl", "api", "--port", str(port)], env=env
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
                for _ in range(300):  # warm: pools, caches, the first compilations
                    http.get("/batch/jobs", params={"limit": 1})
                api_before, pg_before = cpu_s(api.pid), service_cpu_s()["postgres"]
                started = time.perf_counter()
                for _ in range(requests):
                    assert http.get("/batch/jobs", params={"limit": 1}).status_code == 200
                elapsed = time.perf_counter() - started
                api_after, pg_after = cpu_s(api.pid), service_cpu_s()["postgres"]
        finally:
            api.terminate()
            api.wait(30)
    return {
        "benchmark": "request_cpu",
        "requests": requests,
        "requests_per_s_sequential": round(requests / elapsed),
        "api_cpu_us_per_request": round((api_after - api_before) * 1e6 / requests),
        "postgres_cpu_us_per_request": round((pg_after - pg_before) * 1e6 / requests),
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    services()
    print(json.dumps(main(args.requests)))
