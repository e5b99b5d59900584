"""Workers on real Kafka and PostgreSQL: no crash, rebalance, retry or cancellation loses an
item or gives it two outcomes; same-key items keep their order."""

import asyncio
import signal
from collections import defaultdict
from datetime import UTC, datetime

from events.codec import encode
from events.models import JobCancelRequested
from tests.integration.conftest import item_statuses, job_row, publish, submit, wait_job

FAST_RETRIES = {"WORKER_BACKOFF_BASE_S": "0.01", "WORKER_BACKOFF_MAX_S": "0.05"}


def scripted(n: int, **fields) -> list[dict]:
    return [{"token": f"t{i}", **fields} for i in range(n)]


def assert_every_item_once(
    engine, job_id, total: int, success: int, failed: int = 0, cancelled: int = 0
) -> dict:
    job = job_row(engine, job_id)
    assert job is not None
    assert job["total_items"] == job["processed_items"] == total
    assert (job["success_items"], job["failed_items"], job["cancelled_items"]) == (
        success,
        failed,
        cancelled,
    )
    items = item_statuses(engine, job_id)
    assert sorted(items) == list(range(total))  # every item, once
    by_status: dict[str, int] = defaultdict(int)
    for item in items.values():
        by_status[item["status"]] += 1
    assert dict(by_status) == {
        k: v for k, v in (("success", success), ("failed", failed), ("cancelled", cancelled)) if v
    }
    return job


def test_kill_9_mid_job_then_restart_loses_nothing_and_counts_nothing_twice(
    api, keys, engine, processes
):
    slow = {"WORKER_CONCURRENCY": "16"}
    processes.start("projector")
    worker = processes.start("worker", "--job-type", "scripted", **slow)
    job_id = submit(api, keys["alice"], "scripted", scripted(20_000, sleep_ms=2))
    seen = wait_job(
        engine, job_id, 60, lambda j: j["processed_items"] >= 2_000, "the first 2,000 items"
    )
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert seen["processed_items"] < 20_000, "the job finished before the kill"
    processes.start("worker", "--job-type", "scripted", **slow)
    wait_job(engine, job_id, 120, lambda j: j["status"] == "completed", "job completion")
    assert_every_item_once(engine, job_id, 20_000, success=20_000)


def test_one_of_two_workers_leaves_and_a_third_joins_mid_job(api, keys, engine, processes):
    env = {"WORKER_CONCURRENCY": "8"}
    processes.start("projector")
    first = processes.start("worker", "--job-type", "scripted", **env)
    processes.start("worker", "--job-type", "scripted", **env)
    job_id = submit(api, keys["alice"], "scripted", scripted(20_000, sleep_ms=2))
    wait_job(engine, job_id, 60, lambda j: j["processed_items"] >= 3_000, "3,000 items")
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0  # a clean exit: in-flight items finished, offsets committed
    seen = wait_job(engine, job_id, 60, lambda j: j["processed_items"] >= 8_000, "8,000 items")
    assert seen["processed_items"] < 20_000, "the job finished before the third joined"
    processes.start("worker", "--job-type", "scripted", **env)
    wait_job(engine, job_id, 120, lambda j: j["status"] == "completed", "job completion")
    assert_every_item_once(engine, job_id, 20_000, success=20_000)


def test_transient_failures_are_retried_and_permanent_ones_are_not(api, keys, engine, processes):
    processes.start("projector")
    processes.start("worker", "--job-type", "scripted", **FAST_RETRIES)
    items = [
        {"token": "flaky", "transient_failures": 2},
        {"token": "doomed", "transient_failures": 10},
        {"token": "refused", "permanent_code": "already_locked"},
        {"token": "fine"},
    ]
    job_id = submit(api, keys["alice"], "scripted", items)
    wait_job(engine, job_id, 60, lambda j: j["status"] == "completed", "job completion")
    assert_every_item_once(engine, job_id, 4, success=2, failed=2)
    items_by_index = item_statuses(engine, job_id)
    flaky, doomed, refused, fine = (items_by_index[i] for i in range(4))
    assert (flaky["status"], flaky["attempts"]) == ("success", 3)
    assert flaky["output_data"] == {"token": "flaky", "attempt": 3}
    assert (doomed["status"], doomed["attempts"], doomed["error_code"]) == ("failed", 3, "flaky")
    assert doomed["error_message"] == "transient failure 3"
    assert (refused["status"], refused["attempts"], refused["error_code"]) == (
        "failed",
        1,
        "already_locked",
    )
    assert (fine["status"], fine["attempts"]) == ("success", 1)
    assert all(i["duration_ms"] is not None for i in items_by_index.values())


def test_cancel_mid_job_cancels_the_remaining_items(api, keys, engine, processes, kafka_settings):
    processes.start("projector")
    processes.start("worker", "--job-type", "scripted", WORKER_CONCURRENCY="4")
    job_id = submit(api, keys["alice"], "scripted", scripted(2_000, sleep_ms=20))
    wait_job(engine, job_id, 60, lambda j: j["processed_items"] >= 100, "100 items")
    cancel = JobCancelRequested.new(job_id=job_id, user_id="alice")
    asyncio.run(
        publish(
            kafka_settings, [(kafka_settings.topics.jobs, str(job_id).encode(), encode(cancel))]
        )
    )
    cancelled_at = datetime.now(UTC)
    job = wait_job(
        engine, job_id, 60, lambda j: j["status"] in ("cancelled", "completed"), "the job to end"
    )
    assert job["status"] == "cancelled"
    assert job["cancelled_items"] > 0
    assert job["success_items"] + job["cancelled_items"] == job["processed_items"] == 2_000
    items = item_statuses(engine, job_id)
    last_success = max(i["processed_at"] for i in items.values() if i["status"] == "success")
    # learned within a second (plus the items already in flight, 20 ms each)
    assert (last_success - cancelled_at).total_seconds() < 1.5
    result = api.get(f"/batch/jobs/{job_id}", headers=keys["alice"]).json()["result"]
    assert result["result_summary"]["counts"]["cancelled"] == job["cancelled_items"]


def test_items_with_the_same_key_are_handled_in_index_order(api, keys, engine, processes, tmp_path):
    record = tmp_path / "handled.txt"
    processes.start("projector")
    processes.start("worker", "--job-type", "scripted", WORKER_CONCURRENCY="16")
    items = [
        {"token": f"{i}", "key": f"k{i % 5}", "sleep_ms": (i * 7) % 5, "record_to": str(record)}
        for i in range(300)
    ]
    job_id = submit(api, keys["alice"], "scripted", items)
    wait_job(engine, job_id, 60, lambda j: j["status"] == "completed", "job completion")
    by_key: dict[str, list[int]] = defaultdict(list)
    for line in record.read_text().splitlines():
        key, token, _pid = line.split()
        by_key[key].append(int(token))
    assert sorted(by_key) == [f"k{i}" for i in range(5)]
    for key, tokens in by_key.items():
        assert tokens == sorted(tokens), f"{key} handled out of order"
        assert len(tokens) == 60
