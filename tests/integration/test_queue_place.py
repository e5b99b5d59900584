"""A job's place in its lane and a user's queued items, read from real tables
(``ingest_api.queue_place``): the rows are written as the projector and the API would."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from ingest_api.queries import get_job
from ingest_api.queue_place import place_in_queue, queued_items
from ingest_api.statements import Statements


def _job(session: Session, job_type: str, user: str, **row: object) -> uuid.UUID:
    now = datetime.now(UTC)
    values = {
        "id": uuid.uuid4(),
        "user_id": user,
        "job_type": job_type,
        "priority": "bulk",
        "status": "pending",
        "total_items": 100,
        "processed_items": 0,
        "created_at": now,
        "started_at": None,
        "last_outcome_at": None,
        **row,
    }
    session.execute(
        text(
            "INSERT INTO jobs (id, user_id, job_type, priority, status, total_items,"
            " processed_items, created_at, started_at, last_outcome_at) VALUES (:id, :user_id,"
            " :job_type, :priority, :status, :total_items, :processed_items, :created_at,"
            " :started_at, :last_outcome_at)"
        ),
        values,
    )
    return values["id"]  # type: ignore[return-value]


async def _queued(database_url: str, user: str) -> int:
    statements = Statements(database_url, max_size=1)
    await statements.open()
    try:
        return await queued_items(statements, user)
    finally:
        await statements.close()


async def test_the_items_ahead_of_a_job_and_its_eta(engine, database_url):
    now = datetime.now(UTC)  # (not at import: a session collects long before it runs this)
    job_type, user = f"qp{uuid.uuid4().hex[:8]}", f"u{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        # running for 10 s at 1,000 items/s, 5,000 left
        _job(
            session,
            job_type,
            "other",
            status="processing",
            total_items=15_000,
            processed_items=10_000,
            created_at=now - timedelta(seconds=30),
            started_at=now - timedelta(seconds=12),
            last_outcome_at=now - timedelta(seconds=2),
        )
        _job(session, job_type, "other", total_items=3_000, created_at=now - timedelta(seconds=20))
        _job(session, job_type, "other", total_items=7, priority="interactive", created_at=now)
        _job(session, job_type, "other", status="completed", processed_items=100)  # done
        _job(session, "another_type", "other", total_items=9_999)
        mine = _job(
            session, job_type, user, total_items=2_000, created_at=now - timedelta(seconds=5)
        )
        later = _job(session, job_type, user, total_items=50, created_at=now + timedelta(seconds=1))
        interactive = _job(
            session, job_type, user, total_items=10, priority="interactive", created_at=now
        )
        session.commit()

        queue = place_in_queue(session, get_job(session, user_id=user, job_id=mine))
        assert queue is not None and queue.lane == "bulk"
        # the bulk jobs before it (5,000 + 3,000 left) and every interactive job (7 + 10)
        assert queue.items_ahead == 5_000 + 3_000 + 7 + 10
        assert queue.items_per_s is not None and 900 < queue.items_per_s < 1_100
        assert queue.eta_s is not None and 9 < queue.eta_s < 11.5  # (8,017 + 2,000) / ~1,000
        # the later bulk job has this one ahead of it too
        assert place_in_queue(
            session, get_job(session, user_id=user, job_id=later)
        ).items_ahead == (5_000 + 3_000 + 7 + 10 + 2_000)
        # an interactive job: only the interactive jobs before it
        ahead = place_in_queue(session, get_job(session, user_id=user, job_id=interactive))
        assert ahead is not None and ahead.lane == "interactive" and ahead.items_ahead in (0, 7)
        # the user's queued items: their three unfinished jobs
        assert await _queued(database_url, user) == 2_000 + 50 + 10


async def test_a_finished_job_has_no_place_and_accepted_jobs_count_until_folded(
    engine, database_url
):
    job_type, user = f"qp{uuid.uuid4().hex[:8]}", f"u{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        done = _job(session, job_type, user, status="completed", processed_items=100)
        session.execute(
            text(
                "INSERT INTO accepted_jobs"
                " (job_id, user_id, job_type, total_items, priority, published_at)"
                " VALUES (:id, :user, :type, 40, 'bulk', now()),"
                " (:folded, :user, :type, 100, 'bulk', now()),"
                " (:failed, :user, :type, 1000, 'bulk', NULL)"
            ),
            {
                "id": uuid.uuid4(),
                "folded": done,
                "failed": uuid.uuid4(),  # its publishing failed: no job
                "user": user,
                "type": job_type,
            },
        )
        session.commit()
        assert place_in_queue(session, get_job(session, user_id=user, job_id=done)) is None
        assert await _queued(database_url, user) == 40  # accepted, not folded; the done one: 0
