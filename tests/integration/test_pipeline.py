"""1,000 items through the REST API, a real worker process and a real projector process,
on real Kafka and PostgreSQL: every item reaches a terminal status; counts and the result row
are exact; one user never sees another's job."""

import uuid

from tests.integration.conftest import wait_for

ITEMS = 1000


def content_hash(i: int) -> str:
    return f"{i:064x}"


def test_a_thousand_items_complete_with_exact_counts(api, keys, processes):
    processes.start("worker", "--job-type", "query")
    processes.start("projector")
    alice = keys["alice"]
    items = [{"content_hash": content_hash(i)} for i in range(ITEMS)]
    response = api.post(
        "/batch/jobs",
        headers=alice,
        json={"job_type": "query", "items": items, "metadata": {"run": "it"}},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["batch_job_id"]
    assert response.json()["total_items"] == ITEMS

    def finished():
        r = api.get(f"/batch/jobs/{job_id}", headers=alice)
        return r.json() if r.status_code == 200 and r.json()["status"] == "completed" else None

    job = wait_for(finished, 120, f"job {job_id} to complete")
    assert job["total_items"] == job["processed_items"] == job["success_items"] == ITEMS
    assert (job["failed_items"], job["cancelled_items"]) == (0, 0)
    assert job["progress_percent"] == 100
    assert job["metadata"] == {"run": "it"}
    assert job["started_at"] and job["completed_at"] >= job["started_at"]
    result = job["result"]
    assert result["success_rate"] == 1
    assert result["result_summary"] == {
        "counts": {"success": ITEMS, "failed": 0, "cancelled": 0},
        "top_errors": [],
    }
    assert result["avg_item_time_ms"] >= 0 and result["total_time_ms"] > 0

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 300} | ({"cursor": cursor} if cursor is not None else {})
        page = api.get(f"/batch/jobs/{job_id}/items", headers=alice, params=params).json()
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert [i["item_index"] for i in seen] == list(range(ITEMS))
    assert all(i["status"] == "success" and i["attempts"] == 1 for i in seen)
    assert all(i["output_data"] == {"found": False, "proof": None, "device": None} for i in seen)
    assert seen[7]["input_data"] == {"content_hash": content_hash(7)}

    failed_page = api.get(
        f"/batch/jobs/{job_id}/items", headers=alice, params={"status": "failed"}
    ).json()
    assert failed_page == {"items": [], "next_cursor": None}

    # Another user's job is indistinguishable from a missing one.
    bob = keys["bob"]
    assert api.get(f"/batch/jobs/{job_id}", headers=bob).status_code == 404
    assert api.get(f"/batch/jobs/{job_id}/items", headers=bob).status_code == 404
    missing = api.get(f"/batch/jobs/{uuid.uuid4()}", headers=alice)
    assert missing.status_code == 404 and missing.json()["error"] == "job_not_found"
    bad_key = {"Authorization": "Bearer aob_not-a-real-key"}
    assert api.get(f"/batch/jobs/{job_id}", headers=bad_key).status_code == 401


def test_readyz_reports_both_services(api):
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "postgres": "ok", "kafka": "ok"}
