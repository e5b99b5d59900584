"""The API as several processes: two `batchctl api` on their own ports over the same
database see the same jobs and take from the same rate-limit bucket of a key; `batchctl api
--processes 2` serves on one port from two processes."""

import signal
import subprocess
import sys
import time

import httpx
from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key
from tests.e2e.test_batchctl_run import _ready, children, free_port
from tests.integration.conftest import wait_for

RATE, BURST = 5, 10


def _key(engine, user: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with sessionmaker(engine)() as session:
        return {"Authorization": f"Bearer {create_key(session, user_id=user).secret}"}


def test_two_api_processes_share_the_jobs_and_a_keys_rate_limit(processes, engine):
    limits = {"API_RATE_LIMIT_PER_S": str(RATE), "API_RATE_LIMIT_BURST": str(BURST)}
    ports = [free_port(), free_port()]
    for port in ports:
        processes.start("api", "--port", str(port), **limits)
    for port in ports:
        wait_for(lambda port=port: _ready(port), 60, f"the API on {port}")
    apis = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for port in ports]

    submitter = _key(engine, "processes-submitter")
    body = {"job_type": "query", "items": [{"device_id": "d-1"}]}
    job_ids = []
    for api in apis:
        accepted = api.post("/batch/jobs", headers=submitter, json=body)
        assert accepted.status_code == 202, accepted.text
        job_ids.append(accepted.json()["batch_job_id"])
    for api in apis:  # each job is visible from both processes
        for job_id in job_ids:
            assert api.get(f"/batch/jobs/{job_id}", headers=submitter).status_code == 200

    counted = _key(engine, "processes-counted")
    started = time.monotonic()
    answers: list[int] = []
    while time.monotonic() - started < 3:
        for api in apis:  # alternately: each process sees half of the requests
            answers.append(api.get("/batch/jobs", headers=counted).status_code)
    elapsed = time.monotonic() - started
    assert set(answers) == {200, 429}, set(answers)
    allowed = answers.count(200)
    # One bucket: the burst and the rate over the time, however the requests were spread
    # (a bucket per process would have let through about twice as many).
    assert BURST + RATE * elapsed - 2 <= allowed <= BURST + RATE * elapsed + 1, (
        allowed,
        elapsed,
    )


def test_api_processes_serve_one_port(stack_env):
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "batchctl", "api", "--port", str(port), "--processes", "2"],
        env=stack_env,
    )
    try:
        wait_for(lambda: _ready(port), 60, "the API")
        wait_for(lambda: len(children(api.pid)) >= 2, 30, "two API processes")
        served = {
            httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code for _ in range(10)
        }
        assert served == {200}
        api.send_signal(signal.SIGTERM)
        assert api.wait(30) == 0
    finally:
        if api.poll() is None:
            api.kill()
