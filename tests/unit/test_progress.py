from datetime import UTC, datetime, timedelta
from uuid import uuid4

import orjson

from ingest_api.progress import snapshot, sse
from ingest_api.schemas import JobView

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def job(processed: int, total: int = 100, status: str = "processing") -> JobView:
    return JobView(
        batch_job_id=uuid4(),
        job_type="query",
        status=status,
        total_items=total,
        processed_items=processed,
        success_items=processed,
        failed_items=0,
        cancelled_items=0,
        progress_percent=100 * processed / total,
        metadata=None,
        created_at=T0,
        started_at=T0,
        completed_at=None,
        result=None,
    )


def test_rate_and_eta_come_from_the_progress_since_the_start():
    state = snapshot(job(40), T0 + timedelta(seconds=8))
    assert state["items_per_s"] == 5.0
    assert state["eta_s"] == 12.0  # 60 left at 5 per second
    assert state["progress_percent"] == 40


def test_no_eta_before_anything_is_processed_or_after_everything():
    assert snapshot(job(0), T0 + timedelta(seconds=3))["eta_s"] is None
    assert snapshot(job(100, status="completed"), T0 + timedelta(seconds=3))["eta_s"] is None


def test_an_event_is_in_server_sent_events_form():
    raw = sse({"a": 1}, event="progress", event_id="j:1:processing")
    lines = raw.decode().split("\n")
    assert lines[:3] == ["id: j:1:processing", "event: progress", 'data: {"a":1}']
    assert raw.endswith(b"\n\n")
    assert orjson.loads(lines[2][len("data: ") :]) == {"a": 1}


def test_one_stream_follows_several_jobs_until_each_has_finished(monkeypatch):
    """The console's stream: a snapshot of a job when it moved, its ``done`` once finished
    (then it is read no more), nothing for a job that is not returned (not folded yet, or
    someone else's), and the end once all listed jobs are done."""
    import asyncio

    from ingest_api import progress

    monkeypatch.setattr(progress, "POLL_S", 0)
    a, b = job(10), job(0)
    hidden = uuid4()
    polls = [
        [a, b],
        [a, b],  # nothing moved: nothing sent
        [a.model_copy(update={"processed_items": 50}), b],
        [a.model_copy(update={"processed_items": 100, "status": "completed"}), b],
        [b.model_copy(update={"status": "cancelled"})],
    ]
    asked: list[list] = []

    def read(ids):  # type: ignore[no-untyped-def]
        asked.append(list(ids))
        return polls[len(asked) - 1]

    async def collect() -> list[tuple[str, str, int]]:
        events = []
        async for raw in progress.progress_of_jobs(read, [a.batch_job_id, b.batch_job_id]):
            lines = raw.decode().split("\n")
            data = orjson.loads(lines[2][len("data: ") :])
            events.append(
                (lines[1][len("event: ") :], data["batch_job_id"], data["processed_items"])
            )
        return events

    events = asyncio.run(collect())
    ida, idb = str(a.batch_job_id), str(b.batch_job_id)
    assert events == [
        ("progress", ida, 10),
        ("progress", idb, 0),
        ("progress", ida, 50),
        ("done", ida, 100),
        ("done", idb, 0),
    ]
    assert asked[-1] == [b.batch_job_id]  # a finished job is read no more

    def never(ids):  # type: ignore[no-untyped-def]
        return []

    async def waiting() -> list[bytes]:
        return [raw async for raw in progress.progress_of_jobs(never, [hidden], max_s=0.05)]

    assert asyncio.run(waiting())[-1].startswith(b": the stream's time is up")
