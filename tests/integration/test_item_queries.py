"""The API's queries for a job's failed or cancelled items are served by the partial index
on ``unsuccessful`` (migration 0006). Only if they say it in a form the planner sees implies
the index's predicate: ``unsuccessful = true`` does, ``unsuccessful IS TRUE`` does not."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from ingest_api.queries import failed_inputs, list_items
from projections.fold import fold
from projections.writer import ProjectionWriter
from tests import factories as f

INDEX = "ix_items_job_id_item_index_unsuccessful"


@pytest.fixture
def job_id(writer: ProjectionWriter) -> uuid.UUID:
    job_id, events = f.mixed_job(10)
    writer.write(fold(events))
    return job_id


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if "FROM items" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def plan(engine: Engine, statement: str, parameters: Any) -> str:
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        conn.exec_driver_sql("RESET enable_seqscan")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_listing_failed_or_cancelled_items_uses_the_partial_index(
    engine, job_id, statements, status
):
    with Session(engine) as session:
        page = list_items(
            session, user_id="alice", job_id=job_id, after=None, limit=10, status=status
        )
    assert all(item.status == status for item in page.items)
    assert len(statements) == 1
    assert INDEX in plan(engine, *statements[0])


def test_reading_failed_inputs_for_a_retry_uses_the_partial_index(engine, job_id, statements):
    with Session(engine) as session:
        failed = failed_inputs(session, job_id=job_id, after=-1, limit=100)
    assert [index for index, _ in failed] == [3, 6, 8]
    assert INDEX in plan(engine, *statements[0])


def test_the_partial_index_holds_exactly_the_failed_and_cancelled_items(engine, job_id):
    with engine.connect() as conn:
        marked = conn.execute(
            text(
                "SELECT status, count(*) FROM items WHERE job_id = :id AND unsuccessful"
                " GROUP BY status"
            ),
            {"id": job_id},
        ).all()
        unmarked = conn.execute(
            text(
                "SELECT count(*) FROM items WHERE job_id = :id AND unsuccessful IS NULL"
                " AND status IN ('failed', 'cancelled')"
            ),
            {"id": job_id},
        ).scalar_one()
    assert dict(marked) == {"failed": 3} and unmarked == 0
