"""Ingest API: how fast a batch is accepted (validated, published, acknowledged).

Starts one ``batchctl api`` on fresh topics, then measures:
- ``items_per_s_json`` / ``items_per_s_ndjson``: one 100,000-item batch, POST to 202;
- ``p99_ms``, ``p50_ms``, ``requests_per_s``: 10-item POSTs from 50 concurrent clients, each
  with a kept-alive connection, sent by Debian's ``wrk`` (a Lua script writes each body:
  ``benchmarks/wrk/small_jobs.lua``) for ``--small-seconds`` after two seconds of the same
  to warm up, or, without wrk (or with
  ``--load-generator python``), ``--requests`` of them by an httpx client in this process,
  which is the limit before the API is (``small_requests_by`` says which);
- ``peak_rss_mb``: the API process's peak RSS, which includes a 1,000,000-item NDJSON upload.
Prints, last, a JSON line with those figures and ``items_per_s`` (the lower of the two).

    python benchmarks/ingest.py [--items N] [--upload-items M] [--requests R]
        [--small-seconds S] [--load-generator wrk|python] [--api-processes P]
"""

import argparse
import asyncio
import json
import os
import shutil
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
    fresh_settings,
    machine,
    peak_rss_mb,
    post_ndjson,
    scratch_database,
    service_cpu_s,
    services,
    wait_ready,
)
from ingest_api.api_keys import create_key
from jobtypes.registry import job_types
from storage.engine import make_engine
from streaming.topics_admin import create_topics, delete_prefixed_topics


def item(i: int) -> dict:  # type: ignore[type-arg]
    return {"content_hash": f"{i:064x}"}


def ndjson_chunks(n: int, chunk_items: int = 5_000):  # type: ignore[no-untyped-def]
    for start in range(0, n, chunk_items):
        yield b"".join(
            b'{"content_hash": "%064x"}\n' % i for i in range(start, min(n, start + chunk_items))
        )


async def concurrent_posts(
    base: str,
    headers: dict,
    requests: int,
    clients: int,  # type: ignore[type-arg]
) -> tuple[float, float, float]:
    """p99 and p50 latency (ms), and requests per second."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for r in range(requests):
        queue.put_nowait(r)

    async def client() -> None:
        # one kept-alive connection per client, as a real client keeps it
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(
            base_url=base, headers=headers, timeout=60, limits=limits
        ) as http:
            while not queue.empty():
                r = queue.get_nowait()
                body = {"job_type": "query", "items": [item(r * 10 + k) for k in range(10)]}
                started = time.perf_counter()
                response = await http.post("/batch/jobs", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 202, response.text

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return (
        latencies[int(len(latencies) * 0.99) - 1],
        latencies[len(latencies) // 2],
        requests / elapsed,
    )


WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "small_jobs.lua"


def wrk_posts(base: str, key: str, seconds: float, clients: int) -> tuple[float, float, float, int]:
    """p99 and p50 latency (ms), requests per second and requests, by wrk."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", f"-d{seconds:g}s", "-s", str(WRK_SCRIPT), base],
        env={**os.environ, "BATCH_API_KEY": key},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["non_202"] == 0 and summary["errors"] == 0, summary
    rate = summary["requests"] / summary["seconds"]
    return summary["p99_ms"], summary["p50_ms"], rate, summary["requests"]


def main(  # type: ignore[type-arg]
    items: int,
    upload_items: int,
    requests: int,
    small_seconds: float = 10,
    load_generator: str = "wrk",
    api_processes: int = 1,
) -> dict:
    with scratch_database() as url:  # fresh tables each run: no earlier run's rows
        return _measure(
            url, items, upload_items, requests, small_seconds, load_generator, api_processes
        )


def _measure(  # type: ignore[type-arg]
    database_url: str,
    items: int,
    upload_items: int,
    requests: int,
    small_seconds: float,
    load_generator: str,
    api_processes: int,
) -> dict:
    settings = fresh_settings()
    asyncio.run(create_topics(settings, job_types()))
    engine = make_engine(database_url, pool_size=1)
    with sessionmaker(engine)() as session:
        key = create_key(session, user_id=f"bench-{uuid.uuid4().hex[:8]}").secret
    engine.dispose()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BATCH_TOPIC_PREFIX": settings.topic_prefix,
        "LOG_LEVEL": "WARNING",
        "API_MAX_ITEMS_PER_REQUEST": str(max(items, 100_000)),
        "API_RATE_LIMIT_PER_S": "1000000",  # one key sends every request here
        "API_RATE_LIMIT_BURST": "1000000",
    }
    command = [sys.executable, "-m", "batchctl", "api", "--port", str(port)]
    api = subprocess.Popen([*command, "--processes", str(api_processes)], env=env)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        wait_ready(base)
        with httpx.Client(base_url=base, headers=headers, timeout=600) as http:
            # encoded before the clock starts: what is timed is the API, not the client
            body = json.dumps({"job_type": "query", "items": [item(i) for i in range(items)]})
            started = time.perf_counter()
            response = http.post(
                "/batch/jobs", content=body, headers={"Content-Type": "application/json"}
            )
            json_s = time.perf_counter() - started
            assert response.status_code == 202, response.text
            ndjson_s, _ = post_ndjson(http, "query", ndjson_chunks(items))
            if load_generator == "wrk":
                print(f"POSTs of 10 items from 50 clients (wrk, {small_seconds:g}s)", flush=True)
                wrk_posts(base, key, 2, 50)  # warm: connections opened, statements prepared
                api_before, services_before = cpu_s(api.pid), service_cpu_s()
                p99, p50, requests_per_s, requests = wrk_posts(base, key, small_seconds, 50)
            else:
                print(f"{requests:,} POSTs of 10 items from 50 clients ...", flush=True)
                api_before, services_before = cpu_s(api.pid), service_cpu_s()
                p99, p50, requests_per_s = asyncio.run(
                    concurrent_posts(base, headers, requests, 50)
                )
            # (with --api-processes above 1 the API's own figure is its supervisor's: 0)
            api_after, services_after = cpu_s(api.pid), service_cpu_s()
            small_cpu_ms = {
                "api": round((api_after - api_before) * 1000 / requests, 3),
                **{
                    name: round((services_after[name] - services_before[name]) * 1000 / requests, 3)
                    for name in ("postgres", "kafka")
                },
            }
            print(f"uploading {upload_items:,} items as NDJSON ...", flush=True)
            upload_s, accepted = post_ndjson(http, "query", ndjson_chunks(upload_items))
            assert accepted["total_items"] == upload_items
        rss = peak_rss_mb(api.pid)
    finally:
        api.terminate()
        api.wait(30)
        asyncio.run(delete_prefixed_topics(settings))
    json_rate, ndjson_rate = items / json_s, items / ndjson_s
    return {
        "benchmark": "ingest",
        "items": items,
        "items_per_s": round(min(json_rate, ndjson_rate)),
        "items_per_s_json": round(json_rate),
        "items_per_s_ndjson": round(ndjson_rate),
        "p99_ms": round(p99, 1),
        "p50_ms": round(p50, 1),
        "requests_per_s": round(requests_per_s),
        "requests": requests,
        "small_requests_by": load_generator,
        "small_request_cpu_ms": small_cpu_ms,
        "api_processes": api_processes,
        "upload_items": upload_items,
        "upload_items_per_s": round(upload_items / upload_s),
        "peak_rss_mb": rss,
        "machine": machine(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--upload-items", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--small-seconds", type=float, default=10)
    parser.add_argument(
        "--load-generator",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
    )
    parser.add_argument("--api-processes", type=int, default=1)
    args = parser.parse_args()
    services()
    figures = main(
        args.items,
        args.upload_items,
        args.requests,
        args.small_seconds,
        args.load_generator,
        args.api_processes,
    )
    print(json.dumps(figures))
