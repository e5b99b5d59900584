"""The registry job types through the whole pipeline (API or Kafka → worker processes →
projector): arbitration across worker processes, redelivery after kill -9, and the registry
restored by a replay."""

import asyncio
import signal
import subprocess
import sys
import uuid
from typing import Any

from sqlalchemy import text

from archive_jobs.proof_lock import proof_id
from events.codec import encode
from events.models import ItemSubmitted, JobSubmitted
from tests.integration.conftest import item_statuses, publish_many, submit, wait_job
from tests.support.devices import Device, new_hash


def completed(engine, job_id, timeout_s: float = 120) -> dict[str, Any]:
    return wait_job(engine, job_id, timeout_s, lambda j: j["status"] == "completed", "completion")


def enroll(api, headers, engine, devices: list[Device]) -> uuid.UUID:
    job_id = submit(api, headers, "enrollment", [d.enrollment() for d in devices])
    completed(engine, job_id)
    return job_id


def registry_rows(engine, job_ids: list[uuid.UUID]) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            table: [
                dict(row)
                for row in conn.execute(
                    text(f"SELECT * FROM {table} WHERE job_id = ANY(:ids) ORDER BY {key}"),
                    {"ids": job_ids},
                ).mappings()
            ]
            for table, key in (("devices", "device_id"), ("proofs", "content_hash"))
        }


def test_the_same_hashes_locked_by_two_devices_from_two_jobs_on_two_workers(
    api, keys, engine, processes, kafka_settings
):
    processes.start("projector")
    processes.start("worker", "--job-type", "enrollment")
    first, second = Device(), Device()
    enroll(api, keys["alice"], engine, [first, second])
    for _ in range(2):
        processes.start("worker", "--job-type", "proof_lock")

    # Published straight to Kafka with item-scoped keys, as an upstream system may: the two
    # jobs' items for one hash land on different partitions, so on different processes.
    hashes = [new_hash() for _ in range(1_500)]
    jobs = {uuid.uuid4(): first, uuid.uuid4(): second}
    topics = kafka_settings.topics
    messages = []
    for job_id in jobs:
        event = JobSubmitted.new(
            job_id=job_id, job_type="proof_lock", user_id="alice", total_items=len(hashes)
        )
        messages.append((topics.jobs, str(job_id).encode(), encode(event)))
    for index, content_hash in enumerate(hashes):
        for job_id, device in jobs.items():
            item = ItemSubmitted.new(
                job_id=job_id,
                item_index=index,
                job_type="proof_lock",
                input=device.lock(content_hash),
            )
            key = f"{job_id}:{index}".encode()
            messages.append((topics.items("proof_lock"), key, encode(item)))
    asyncio.run(publish_many(kafka_settings, messages))

    items = {}
    for job_id in jobs:
        completed(engine, job_id)
        items[job_id] = item_statuses(engine, job_id)
    wins = dict.fromkeys(jobs, 0)
    for index in range(len(hashes)):
        outcomes = {job_id: items[job_id][index] for job_id in jobs}
        winners = [j for j, item in outcomes.items() if item["status"] == "success"]
        assert len(winners) == 1, (index, outcomes)
        (winner,) = winners
        (loser,) = set(jobs) - {winner}
        wins[winner] += 1
        assert outcomes[winner]["output_data"]["already_locked"] is False
        assert outcomes[winner]["output_data"]["proof_id"] == str(proof_id(winner, index))
        assert outcomes[loser]["status"] == "failed"
        assert outcomes[loser]["error_code"] == "already_locked"
    rows = registry_rows(engine, list(jobs))["proofs"]
    assert len(rows) == len(hashes)
    assert all(row["device_id"] == jobs[row["job_id"]].device_id for row in rows)
    print("wins per job:", list(wins.values()))


def expected_lock(job_id: uuid.UUID, index: int) -> tuple[str, Any]:
    """Every 10th item is signed wrongly; every 7th locks again the hash of the item 6
    before it (already locked by this same device, unless that one was signed wrongly)."""
    if index % 10 == 9:
        return "failed", "invalid_signature"
    if index % 7 == 6 and (index - 6) % 10 != 9:
        return "success", (True, str(proof_id(job_id, index - 6)))
    return "success", (False, str(proof_id(job_id, index)))


def test_kill_9_mid_job_gives_every_item_the_outcome_it_would_have_had(
    api, keys, engine, processes
):
    processes.start("projector")
    processes.start("worker", "--job-type", "enrollment")
    device, impostor = Device(), Device()
    enroll(api, keys["alice"], engine, [device])

    total = 25_000
    hashes = [new_hash() for _ in range(total)]
    items = []
    for index in range(total):
        content_hash = hashes[index - 6] if index % 7 == 6 else hashes[index]
        item = device.lock(content_hash)
        if index % 10 == 9:
            item["signature"] = impostor.sign(content_hash)
        items.append(item)

    worker = processes.start("worker", "--job-type", "proof_lock")
    job_id = submit(api, keys["alice"], "proof_lock", items)
    seen = wait_job(engine, job_id, 120, lambda j: j["processed_items"] >= 3_000, "3,000 items")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert seen["processed_items"] < total, "the job finished before the kill"
    processes.start("worker", "--job-type", "proof_lock")
    job = completed(engine, job_id, 180)

    outcomes = item_statuses(engine, job_id)
    assert sorted(outcomes) == list(range(total))
    for index, item in outcomes.items():
        status, detail = expected_lock(job_id, index)
        assert item["status"] == status, (index, item)
        if status == "failed":
            assert item["error_code"] == detail
        else:
            output = item["output_data"]
            assert (output["already_locked"], output["proof_id"]) == detail, (index, output)
    failures = sum(1 for i in range(total) if i % 10 == 9)
    assert (job["success_items"], job["failed_items"]) == (total - failures, failures)


def test_replay_restores_the_registry_identically(api, keys, engine, processes, stack_env):
    processes.start("projector")
    for job_type in ("enrollment", "proof_lock"):
        processes.start("worker", "--job-type", job_type)
    devices = [Device() for _ in range(20)]
    rival = Device(device_id=devices[0].device_id)  # same device, another key: a conflict
    enrollments = [d.enrollment(platform="ios", label=f"unit {n}") for n, d in enumerate(devices)]
    enrollments += [devices[1].enrollment(), rival.enrollment()]
    job_ids = [submit(api, keys["alice"], "enrollment", enrollments)]
    completed(engine, job_ids[0])
    hashes = [new_hash() for _ in range(200)]
    locks = [
        devices[n % 20].lock(h, captured_at=f"2026-11-0{1 + n % 9}T10:00:00Z")
        for n, h in enumerate(hashes)
    ]
    locks += [devices[(n + 1) % 20].lock(h) for n, h in enumerate(hashes[:50])]  # lose
    job_ids.append(submit(api, keys["bob"], "proof_lock", locks))
    completed(engine, job_ids[1])

    before = registry_rows(engine, job_ids)
    assert (len(before["devices"]), len(before["proofs"])) == (20, 200)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE devices, proofs"))
    assert registry_rows(engine, job_ids) == {"devices": [], "proofs": []}

    replay = subprocess.run(
        [sys.executable, "-m", "batchctl", "replay"],
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 0, replay.stderr
    assert registry_rows(engine, job_ids) == before
