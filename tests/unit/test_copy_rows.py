"""The staging rows' text has a field per staging column, in the columns' order."""

import dataclasses
import uuid
from datetime import UTC, datetime

from projections.copy_rows import ITEM_COLUMNS, JOB_COLUMNS, NULL, item_lines, job_lines
from projections.fold import ItemChange, JobChange
from tests import factories as f

WHEN = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def fields(lines: str) -> list[list[str]]:
    return [line.split("\t") for line in lines.splitlines()]


def test_an_items_row_has_its_columns_in_order():
    assert [c for c, _ in ITEM_COLUMNS] == [x.name for x in dataclasses.fields(ItemChange)]
    job_id = uuid.uuid4()
    change = ItemChange(
        job_id, 7, True, {"a": "b\tc"}, WHEN, "failed", None, "boom", "x\ny", 2, 1.5, WHEN
    )
    (row,) = fields(item_lines([change]))
    assert len(row) == len(ITEM_COLUMNS)
    by_column = dict(zip([c for c, _ in ITEM_COLUMNS], row, strict=True))
    assert by_column["job_id"] == str(job_id) and by_column["item_index"] == "7"
    assert by_column["input_data"] == '{"a":"b\\\\tc"}'  # JSON's escape, escaped for COPY
    assert by_column["output_data"] == NULL and by_column["error_message"] == "x\\ny"
    assert (by_column["attempts"], by_column["duration_ms"]) == ("2", "1.5")


def test_a_jobs_row_has_its_columns_in_order_whether_submitted_or_not():
    job_id = uuid.uuid4()
    submitted = JobChange(job_id, f.job_submitted(job_id, 3), cancel_requested_at=WHEN)
    cancel_only = JobChange(uuid.uuid4(), None, cancel_requested_at=WHEN)
    rows = fields(job_lines([submitted, cancel_only]))
    assert [len(row) for row in rows] == [len(JOB_COLUMNS)] * 2
    names = [c for c, _ in JOB_COLUMNS]
    first, second = (dict(zip(names, row, strict=True)) for row in rows)
    assert (first["user_id"], first["job_type"], first["total_items"]) == ("alice", "query", "3")
    assert first["cancel_requested_at"] == second["cancel_requested_at"] != NULL
    assert second["user_id"] == NULL
