"""The seed's design, as the baseline for ``benchmarks/e2e.py``.

The seed service's source is not in this repository; its design is described in issue #7:
``create_batch_job`` and ``process_batch_job`` on one SQLAlchemy ORM session, a commit per
item status change and per counter update, a no-op processor, and only the reserved
``metadata`` attribute renamed. This module is that design, written plainly on the same
tables (``storage.tables``: ``metadata`` is mapped as ``job_metadata``), so that it runs
against the same PostgreSQL. Its cost is quadratic in the batch size: every commit expires
every object the session holds (``expire_on_commit``), and the session holds every item.
"""

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from storage.tables import Item, Job, Result


def noop_processor(data: dict[str, Any]) -> dict[str, Any]:
    return {"n": data.get("n", 0)}


def create_batch_job(
    db: Session,
    user_id: str,
    job_type: str,
    items: list[dict[str, Any]],
    metadata: dict[str, Any] | None = None,
) -> Job:
    job = Job(
        id=uuid.uuid4(),
        user_id=user_id,
        job_type=job_type,
        status="pending",
        total_items=len(items),
        processed_items=0,
        success_items=0,
        failed_items=0,
        progress_percent=0.0,
        job_metadata=metadata,
        created_at=datetime.now(UTC),
    )
    db.add(job)
    db.commit()
    for index, data in enumerate(items):
        db.add(Item(job_id=job.id, item_index=index, status="pending", input_data=data))
    db.commit()
    return job


def process_batch_job(db: Session, job_id: uuid.UUID, processor=noop_processor) -> None:  # type: ignore[no-untyped-def]
    job = db.execute(select(Job).where(Job.id == job_id)).scalar_one()
    job.status = "processing"
    job.started_at = datetime.now(UTC)
    db.commit()
    items = db.execute(select(Item).where(Item.job_id == job_id)).scalars().all()
    started = time.perf_counter()
    for item in items:
        item.status = "processing"
        db.commit()
        try:
            item.output_data = processor(item.input_data)
            item.status = "success"
            item.processed_at = datetime.now(UTC)
            db.commit()
            job.success_items += 1
        except Exception as exc:
            item.status = "failed"
            item.error_message = str(exc)
            db.commit()
            job.failed_items += 1
        job.processed_items += 1
        job.progress_percent = job.processed_items / job.total_items * 100
        db.commit()
    elapsed_ms = (time.perf_counter() - started) * 1000
    job.status = "completed"
    job.completed_at = datetime.now(UTC)
    db.commit()
    db.add(
        Result(
            job_id=job.id,
            total_time_ms=elapsed_ms,
            avg_item_time_ms=elapsed_ms / max(1, job.total_items or 0),
            success_rate=job.success_items / max(1, job.total_items or 0),
            result_summary={"success": job.success_items, "failed": job.failed_items},
            created_at=datetime.now(UTC),
        )
    )
    db.commit()


def run_seed(engine: Engine, items: int) -> float:
    """Create and process one job of ``items`` no-op items; return the seconds it took."""
    started = time.perf_counter()
    with Session(engine) as db:
        job = create_batch_job(db, "bench", "noop", [{"n": i} for i in range(items)])
        process_batch_job(db, job.id)
    return time.perf_counter() - started
