"""Listing, cancelling and reading results through the API, on the real pipeline; another
user's job is a missing one for every endpoint."""

import json
import uuid

from tests.integration.conftest import submit, wait_job


def hashes(n: int, start: int = 0) -> list[dict]:
    return [{"content_hash": f"{i:064x}"} for i in range(start, start + n)]


def test_list_jobs_newest_first_paged_and_filtered(api, keys, engine, processes):
    processes.start("projector")
    processes.start("worker", "--job-type", "query")
    alice, bob = keys["alice"], keys["bob"]
    mine = [submit(api, alice, "query", hashes(2, i)) for i in range(5)]
    theirs = submit(api, bob, "query", hashes(1))
    for job_id in [*mine, theirs]:
        wait_job(engine, job_id, 60, lambda j: j["status"] == "completed", "completion")

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, "status": "completed"} | ({"cursor": cursor} if cursor else {})
        response = api.get("/batch/jobs", headers=alice, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [uuid.UUID(j["batch_job_id"]) for j in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mine_listed = [j for j in seen if j in mine]
    assert mine_listed == list(reversed(mine))  # newest first
    assert theirs not in seen  # only the caller's jobs
    assert pages >= 3
    assert api.get("/batch/jobs", headers=bob, params={"limit": 1000}).json()["jobs"][0][
        "batch_job_id"
    ] == str(theirs)
    pending = api.get("/batch/jobs", headers=alice, params={"status": "pending"}).json()
    assert all(j["status"] == "pending" for j in pending["jobs"])
    bad = api.get("/batch/jobs", headers=alice, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_cursor"
    assert api.get("/batch/jobs", headers=alice, params={"status": "nope"}).status_code == 422


def test_cancel_a_waiting_job_then_read_its_result(api, keys, engine, processes):
    processes.start("projector")  # no worker yet: the job waits
    alice, bob = keys["alice"], keys["bob"]
    job_id = submit(api, alice, "scripted", [{"token": f"t{i}"} for i in range(10)])
    wait_job(engine, job_id, 30, lambda j: j["user_id"] is not None, "the job to be visible")

    not_ready = api.get(f"/batch/jobs/{job_id}/result", headers=alice)
    assert not_ready.status_code == 409 and not_ready.json()["error"] == "result_not_ready"
    for path in (f"/batch/jobs/{job_id}/result", f"/batch/jobs/{job_id}"):
        assert api.get(path, headers=bob).status_code == 404
    assert api.post(f"/batch/jobs/{job_id}/cancel", headers=bob).status_code == 404
    assert api.post(f"/batch/jobs/{uuid.uuid4()}/cancel", headers=alice).status_code == 404

    accepted = api.post(f"/batch/jobs/{job_id}/cancel", headers=alice)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"batch_job_id": str(job_id), "status": "cancelling"}

    processes.start("worker", "--job-type", "scripted")
    job = wait_job(
        engine,
        job_id,
        60,
        lambda j: j["status"] != "pending" and j["processed_items"] == 10,
        "the job to end",
    )
    assert job["status"] == "cancelled" and job["cancelled_items"] == 10
    result = api.get(f"/batch/jobs/{job_id}/result", headers=alice)
    assert result.status_code == 200
    assert result.json()["result_summary"]["counts"] == {"success": 0, "failed": 0, "cancelled": 10}
    again = api.post(f"/batch/jobs/{job_id}/cancel", headers=alice)
    assert again.status_code == 409 and again.json()["error"] == "job_finished"


def test_a_job_is_readable_right_after_its_202_and_keys_make_submission_idempotent(
    api, keys, engine, processes
):
    alice, bob = keys["alice"], keys["bob"]
    body = {"job_type": "query", "items": hashes(3), "metadata": {"n": 1}}
    headers = {**alice, "Idempotency-Key": f"key-{uuid.uuid4()}"}
    first = api.post("/batch/jobs", json=body, headers=headers)
    assert first.status_code == 202
    job_id = first.json()["batch_job_id"]

    # No projector is running: the job is answered from the API's own record.
    job = api.get(f"/batch/jobs/{job_id}", headers=alice)
    assert job.status_code == 200
    assert (job.json()["status"], job.json()["total_items"]) == ("pending", 3)
    assert job.json()["metadata"] == {"n": 1}
    assert api.get(f"/batch/jobs/{job_id}/items", headers=alice).json()["items"] == []
    assert api.get(f"/batch/jobs/{job_id}", headers=bob).status_code == 404

    again = api.post("/batch/jobs", json=body, headers=headers)
    assert again.status_code == 202 and again.json() == first.json()
    other = api.post("/batch/jobs", json={**body, "items": hashes(4)}, headers=headers)
    assert other.status_code == 409
    # Bob's same key is Bob's own: it makes a job of his.
    bobs = api.post(
        "/batch/jobs", json=body, headers={**bob, "Idempotency-Key": headers["Idempotency-Key"]}
    )
    assert bobs.status_code == 202 and bobs.json()["batch_job_id"] != job_id

    processes.start("projector")
    processes.start("worker", "--job-type", "query")
    done = wait_job(
        engine, uuid.UUID(job_id), 60, lambda j: j["status"] == "completed", "completion"
    )
    assert done["total_items"] == done["success_items"] == 3  # exact count downstream


def test_retry_resubmits_the_failed_items_as_a_new_job_naming_the_original(
    api, keys, engine, processes
):
    processes.start("projector")
    processes.start(
        "worker", "--job-type", "scripted", WORKER_BACKOFF_BASE_S="0.01", WORKER_MAX_ATTEMPTS="3"
    )
    alice, bob = keys["alice"], keys["bob"]
    token = f"flaky-{uuid.uuid4()}"
    items = [{"token": f"ok-{i}"} for i in range(3)] + [
        {"token": token, "transient_failures": 3},  # exhausts its 3 attempts, then recovers
        {"token": f"no-{uuid.uuid4()}", "permanent_code": "refused"},
    ]
    original = submit(api, alice, "scripted", items)
    slow = submit(api, alice, "scripted", [{"token": f"slow-{uuid.uuid4()}", "sleep_ms": 3000}])
    still_running = api.post(f"/batch/jobs/{slow}/retry", headers=alice)
    assert still_running.status_code == 409
    assert "still" in still_running.json()["detail"]
    wait_job(engine, original, 60, lambda j: j["status"] == "completed", "completion")
    assert api.post(f"/batch/jobs/{original}/retry", headers=bob).status_code == 404

    response = api.post(f"/batch/jobs/{original}/retry", headers=alice)
    assert response.status_code == 202, response.text
    retry = uuid.UUID(response.json()["batch_job_id"])
    assert response.json()["total_items"] == 2
    done = wait_job(engine, retry, 60, lambda j: j["status"] == "completed", "the retry")
    assert (done["success_items"], done["failed_items"]) == (1, 1)
    view = api.get(f"/batch/jobs/{retry}", headers=alice).json()
    assert view["retry_of"] == str(original)
    retried = api.get(f"/batch/jobs/{retry}/items", headers=alice).json()["items"]
    assert [i["input_data"]["token"] for i in retried] == [token, items[4]["token"]]
    assert retried[0]["status"] == "success" and retried[1]["error_code"] == "refused"

    clean = submit(api, alice, "scripted", [{"token": f"fine-{uuid.uuid4()}"}])
    wait_job(engine, clean, 60, lambda j: j["status"] == "completed", "completion")
    nothing = api.post(f"/batch/jobs/{clean}/retry", headers=alice)
    assert nothing.status_code == 409 and nothing.json()["error"] == "nothing_to_retry"


def test_an_ndjson_upload_of_20000_items_completes_exactly(api, keys, engine, processes):
    processes.start("projector")
    processes.start("worker", "--job-type", "query")
    lines = b"".join(b'{"content_hash": "%064x"}\n' % i for i in range(20_000))

    def chunks():  # streamed to the API, not one buffer
        for start in range(0, len(lines), 64 * 1024):
            yield lines[start : start + 64 * 1024]

    response = api.post(
        "/batch/jobs",
        params={"job_type": "query"},
        content=chunks(),
        headers={**keys["alice"], "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["batch_job_id"])
    job = wait_job(engine, job_id, 120, lambda j: j["status"] == "completed", "completion")
    assert job["total_items"] == job["success_items"] == 20_000
    page = api.get(
        f"/batch/jobs/{job_id}/items", headers=keys["alice"], params={"cursor": 12344, "limit": 1}
    ).json()
    assert page["items"][0]["input_data"] == {"content_hash": f"{12345:064x}"}


def test_progress_streams_as_server_sent_events_until_done(api, keys, engine, processes):
    processes.start("projector")
    processes.start("worker", "--job-type", "scripted", WORKER_CONCURRENCY="2")
    alice = keys["alice"]
    job_id = submit(
        api,
        alice,
        "scripted",
        [{"token": f"sse-{uuid.uuid4()}", "sleep_ms": 50} for _ in range(40)],
    )
    assert api.get(f"/batch/jobs/{job_id}/events", headers=keys["bob"]).status_code == 404

    events = []
    with api.stream("GET", f"/batch/jobs/{job_id}/events", headers=alice) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[len("data: ") :])))
                if kind == "done":
                    break
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1
    assert len(kinds) >= 3  # progress was seen along the way
    processed = [e["processed_items"] for _, e in events]
    assert processed == sorted(processed) and processed[-1] == 40
    final = events[-1][1]
    assert (final["status"], final["progress_percent"]) == ("completed", 100)
    assert any(e["items_per_s"] > 0 and e["eta_s"] for k, e in events if k == "progress")


def test_too_many_requests_for_one_key_is_429_with_retry_after(api_settings, keys):
    from fastapi.testclient import TestClient

    from ingest_api.app import create_app

    strict = api_settings.model_copy(
        update={"api_rate_limit_per_s": 0.5, "api_rate_limit_burst": 2}
    )
    with TestClient(create_app(strict)) as limited:
        codes = [limited.get("/batch/jobs", headers=keys["alice"]).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        refused = limited.get("/batch/jobs", headers=keys["alice"])
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"] == "rate_limited"
        assert limited.get("/batch/jobs", headers=keys["bob"]).status_code == 200


def test_a_job_whose_publish_died_half_way_is_not_visible_until_complete(
    api, keys, engine, processes, kafka_settings
):
    import asyncio

    from events.codec import encode
    from events.models import ItemSubmitted, JobSubmitted
    from tests.integration.conftest import job_row, publish_many, wait_for

    processes.start("projector")
    processes.start("worker", "--job-type", "query")
    topics, job_id = kafka_settings.topics, uuid.uuid4()

    def item(i: int) -> tuple[str, bytes, bytes]:
        event = ItemSubmitted.new(
            job_id=job_id, item_index=i, job_type="query", input={"content_hash": f"{i:064x}"}
        )
        return topics.items("query"), f"{job_id}:{i}".encode(), encode(event)

    # What an API that died after publishing three of five items leaves behind:
    asyncio.run(publish_many(kafka_settings, [item(i) for i in range(3)]))
    wait_for(
        lambda: (job_row(engine, job_id) or {}).get("processed_items") == 3,
        60,
        "the three items handled and folded",
    )
    assert job_row(engine, job_id)["user_id"] is None  # the items were folded...
    assert api.get(f"/batch/jobs/{job_id}", headers=keys["alice"]).status_code == 404
    listed = api.get("/batch/jobs", headers=keys["alice"], params={"limit": 1000}).json()
    assert str(job_id) not in {j["batch_job_id"] for j in listed["jobs"]}  # ...not the job

    # The rest, and the job last, as a retried request publishes them:
    submitted = JobSubmitted.new(job_id=job_id, job_type="query", user_id="alice", total_items=5)
    asyncio.run(
        publish_many(
            kafka_settings,
            [*(item(i) for i in range(5)), (topics.jobs, str(job_id).encode(), encode(submitted))],
        )
    )
    wait_for(
        lambda: (job_row(engine, job_id) or {}).get("status") == "completed",
        60,
        "the completed job",
    )
    view = api.get(f"/batch/jobs/{job_id}", headers=keys["alice"]).json()
    assert (view["status"], view["success_items"]) == ("completed", 5)
