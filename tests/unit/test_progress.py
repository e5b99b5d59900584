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
