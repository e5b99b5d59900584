"""A job's items as a download, CSV or JSON Lines, of any size: read a page at a time by
item index, each page in a short transaction of its own (a download of millions of items
holds no transaction open for its whole time), and streamed as it is read."""

import csv
import io
from collections.abc import Callable, Iterator
from typing import Literal
from uuid import UUID

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest_api import queries
from storage.tables import Item

ExportFormat = Literal["csv", "jsonl"]
PAGE = 5000
COLUMNS = (
    "item_index",
    "status",
    "error_code",
    "error_message",
    "attempts",
    "duration_ms",
    "processed_at",
    "input",
    "output",
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def check_owner(session: Session, *, user_id: str, job_id: UUID) -> None:
    """``JobNotFound`` unless the caller owns the job (checked before the stream starts)."""
    queries.get_job(session, user_id=user_id, job_id=job_id)
    session.rollback()


def filename(job_id: UUID, fmt: ExportFormat) -> str:
    return f"job-{job_id}-items.{fmt}"


def export_items(
    sessions: Callable[[], Session], job_id: UUID, fmt: ExportFormat, status: str | None = None
) -> Iterator[bytes]:
    """The job's items in index order (optionally of one status), a page of rows per chunk."""
    if fmt == "csv":
        yield _csv_rows([COLUMNS])
    after = -1
    while True:
        with sessions() as session:
            query = select(Item).where(Item.job_id == job_id, Item.item_index > after)
            if status is not None:
                query = query.where(Item.status == status)
            rows = list(session.scalars(query.order_by(Item.item_index).limit(PAGE)))
        if not rows:
            return
        after = rows[-1].item_index
        if fmt == "csv":
            yield _csv_rows(
                [
                    (
                        r.item_index,
                        r.status,
                        r.error_code or "",
                        r.error_message or "",
                        r.attempts,
                        "" if r.duration_ms is None else r.duration_ms,
                        r.processed_at.isoformat() if r.processed_at else "",
                        orjson.dumps(r.input_data).decode() if r.input_data is not None else "",
                        orjson.dumps(r.output_data).decode() if r.output_data is not None else "",
                    )
                    for r in rows
                ]
            )
        else:
            yield b"".join(
                orjson.dumps(
                    {
                        "item_index": r.item_index,
                        "status": r.status,
                        "error_code": r.error_code,
                        "error_message": r.error_message,
                        "attempts": r.attempts,
                        "duration_ms": r.duration_ms,
                        "processed_at": r.processed_at,
                        "input": r.input_data,
                        "output": r.output_data,
                    },
                    option=orjson.OPT_APPEND_NEWLINE,
                )
                for r in rows
            )


def _csv_rows(rows: list[tuple[object, ...]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()
