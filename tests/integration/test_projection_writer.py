"""The projection writer against a real PostgreSQL: exact counts, convergence whatever the
order, duplicates harmless, positions stored atomically with the rows."""

import random
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from events.models import AnyEvent
from projections.fold import Changes, fold
from projections.writer import ProjectionWriter
from tests import factories as f


def write(writer: ProjectionWriter, events: list[AnyEvent], offset: int = 0) -> None:
    changes = fold(events)
    for i in range(len(events)):
        changes.advance("topic", 0, offset + i)
    writer.write(changes)


def snapshot(engine: Engine, job_id: uuid.UUID) -> dict[str, Any]:
    """Everything the tables say about a job, without its id (so two jobs can compare)."""
    with engine.connect() as conn:
        job = (
            conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).mappings().one()
        )
        items = (
            conn.execute(
                text("SELECT * FROM items WHERE job_id = :id ORDER BY item_index"), {"id": job_id}
            )
            .mappings()
            .all()
        )
        result = (
            conn.execute(text("SELECT * FROM results WHERE job_id = :id"), {"id": job_id})
            .mappings()
            .one_or_none()
        )
    strip = lambda row, key: {k: v for k, v in row.items() if k != key}  # noqa: E731
    return {
        "job": strip(job, "id"),
        "items": [strip(i, "job_id") for i in items],
        "result": strip(result, "job_id") if result else None,
    }


def test_a_job_folds_to_exact_counts_times_and_result(engine, writer):
    job_id, events = f.mixed_job(10)
    write(writer, events)
    state = snapshot(engine, job_id)
    job, result = state["job"], state["result"]
    assert job["status"] == "completed"
    assert (job["total_items"], job["processed_items"]) == (10, 10)
    assert (job["success_items"], job["failed_items"], job["cancelled_items"]) == (7, 3, 0)
    assert job["progress_percent"] == 100
    assert (job["started_at"], job["completed_at"]) == (f.at(1), f.at(1.9))
    assert job["user_id"] == "alice" and job["metadata"] == {"source": "test"}
    assert [i["status"] for i in state["items"]].count("success") == 7
    durations = [1 + i / 4 for i in range(10) if i not in (3, 6, 8)] + [2.5] * 3
    assert result["avg_item_time_ms"] == pytest.approx(sum(durations) / 10)
    assert result["total_time_ms"] == pytest.approx(1900)
    assert result["success_rate"] == pytest.approx(0.7)
    assert result["result_summary"] == {
        "counts": {"success": 7, "failed": 3, "cancelled": 0},
        "top_errors": [{"code": "bad_signature", "count": 2}, {"code": "not_enrolled", "count": 1}],
    }


@pytest.mark.parametrize("seed", range(5))
def test_any_order_and_batching_with_duplicates_converges_to_the_same_state(engine, writer, seed):
    rnd = random.Random(seed)
    reference_id, reference = f.mixed_job(25)
    write(writer, reference)
    job_id, events = f.mixed_job(25)
    events = events + rnd.sample(events, k=len(events) // 2)  # duplicates
    rnd.shuffle(events)
    start = 0
    while start < len(events):
        size = rnd.randint(1, 12)
        write(writer, events[start : start + size], offset=start)
        start += size
    assert snapshot(engine, job_id) == snapshot(engine, reference_id)


def test_a_later_different_outcome_changes_nothing(engine, writer):
    job_id = uuid.uuid4()
    write(
        writer,
        [
            f.job_submitted(job_id, 2),
            f.item_submitted(job_id, 0),
            f.item_submitted(job_id, 1),
            f.succeeded(job_id, 0),
        ],
    )
    before = snapshot(engine, job_id)
    write(writer, [f.failed(job_id, 0, code="late"), f.cancelled(job_id, 0)])
    assert snapshot(engine, job_id) == before
    assert before["job"]["status"] == "processing"
    assert (before["job"]["processed_items"], before["job"]["success_items"]) == (1, 1)


def test_outcomes_before_the_job_is_known_wait_for_its_total(engine, writer):
    job_id = uuid.uuid4()
    write(writer, [f.succeeded(job_id, 0), f.succeeded(job_id, 1)])
    early = snapshot(engine, job_id)
    assert early["job"]["status"] == "processing" and early["job"]["total_items"] is None
    assert early["items"][0]["input_data"] is None
    write(
        writer,
        [f.item_submitted(job_id, 1), f.job_submitted(job_id, 2), f.item_submitted(job_id, 0)],
    )
    final = snapshot(engine, job_id)
    assert final["job"]["status"] == "completed"
    assert final["items"][0]["input_data"] == {"content_hash": "0" * 64}
    assert final["items"][0]["status"] == "success"
    assert final["result"]["success_rate"] == 1


def test_cancelled_items_end_the_job_cancelled(engine, writer):
    job_id = uuid.uuid4()
    write(
        writer,
        [
            f.job_submitted(job_id, 3),
            f.succeeded(job_id, 0),
            f.cancel_requested(job_id),
            f.cancelled(job_id, 1),
            f.cancelled(job_id, 2),
        ],
    )
    state = snapshot(engine, job_id)
    assert state["job"]["status"] == "cancelled"
    assert state["job"]["cancel_requested_at"] == f.at(0.5)
    assert state["result"]["result_summary"]["counts"] == {
        "success": 1,
        "failed": 0,
        "cancelled": 2,
    }


def test_positions_are_stored_with_the_rows_or_not_at_all(engine, writer, monkeypatch):
    job_id = uuid.uuid4()
    write(writer, [f.job_submitted(job_id, 1)], offset=0)
    assert writer.load_positions() == {("topic", 0): 1}

    real_apply = writer._apply

    def crash_after_applying(cur, changes: Changes) -> None:
        real_apply(cur, changes)
        raise RuntimeError("crash before commit")

    monkeypatch.setattr(writer, "_apply", crash_after_applying)
    with pytest.raises(RuntimeError):
        write(writer, [f.item_submitted(job_id, 0), f.succeeded(job_id, 0)], offset=1)
    assert writer.load_positions() == {("topic", 0): 1}
    assert snapshot(engine, job_id)["items"] == []

    monkeypatch.undo()
    write(writer, [f.item_submitted(job_id, 0), f.succeeded(job_id, 0)], offset=1)
    assert writer.load_positions() == {("topic", 0): 3}
    assert snapshot(engine, job_id)["job"]["status"] == "completed"


def test_an_item_submitted_and_finished_in_one_batch_counts_once(engine, writer):
    job_id = uuid.uuid4()
    write(
        writer,
        [
            f.job_submitted(job_id, 2),
            f.item_submitted(job_id, 0),
            f.succeeded(job_id, 0),
            f.item_submitted(job_id, 1),
        ],
    )
    state = snapshot(engine, job_id)
    assert [(i["status"], i["input_data"]) for i in state["items"]] == [
        ("success", {"content_hash": "0" * 64}),
        ("pending", {"content_hash": f"{1:064x}"}),
    ]
    assert (state["job"]["processed_items"], state["job"]["status"]) == (1, "processing")


def test_a_submission_after_its_outcome_with_a_duplicate_outcome_only_adds_the_input(
    engine, writer
):
    job_id = uuid.uuid4()
    write(writer, [f.job_submitted(job_id, 1), f.succeeded(job_id, 0)])
    write(writer, [f.item_submitted(job_id, 0), f.failed(job_id, 0, code="late")])
    state = snapshot(engine, job_id)
    item = state["items"][0]
    assert (item["status"], item["input_data"]) == ("success", {"content_hash": "0" * 64})
    assert (state["job"]["processed_items"], state["job"]["failed_items"]) == (1, 0)
    assert state["job"]["status"] == "completed"


def test_a_successful_outcome_is_written_in_place(engine, writer):
    """Migration 0006: room on the page and no index on what the outcome changes, so the
    pending row's terminal version is a heap-only-tuple update (no index entry, no new
    page). Counted by PostgreSQL's statistics, flushed by the writer's backend."""

    def updates() -> tuple[int, int]:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
                    " WHERE relid = 'items'::regclass"
                )
            ).one()
        return int(row[0]), int(row[1])

    def flush_writer_stats() -> None:
        with writer.conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")
        writer.conn.commit()

    flush_writer_stats()
    before = updates()
    job_id, count = uuid.uuid4(), 200
    write(
        writer,
        [f.job_submitted(job_id, count)] + [f.item_submitted(job_id, i) for i in range(count)],
    )
    write(writer, [f.succeeded(job_id, i) for i in range(count)], offset=count + 1)
    flush_writer_stats()
    deadline = time.monotonic() + 10
    while (after := updates())[0] - before[0] < count and time.monotonic() < deadline:
        time.sleep(0.1)
    updated, in_place = after[0] - before[0], after[1] - before[1]
    assert updated >= count
    assert in_place >= count * 0.8, (updated, in_place)
