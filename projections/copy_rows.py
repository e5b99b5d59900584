"""Staging rows in PostgreSQL's COPY text format, built for speed.

COPY is the cheapest way into PostgreSQL; the cost is building its text in Python. These
builders know each staging table's columns and types: timestamps and UUIDs are written by
orjson (in C, where ``isoformat()`` and ``str()`` run per value), and strings are only
escaped when they
hold one of COPY's four special characters.
"""

from collections.abc import Iterable
from typing import Any

import orjson

from projections.fold import ItemChange, JobChange

NULL = "\\N"

# The staging tables' columns, in the order the line builders below write them (the writer
# creates the tables from these, and names the columns in its COPY).
JOB_COLUMNS = (
    ("job_id", "uuid"),
    ("user_id", "text"),
    ("job_type", "text"),
    ("total_items", "integer"),
    ("metadata", "jsonb"),
    ("retry_of", "uuid"),
    ("created_at", "timestamptz"),
    ("priority", "text"),
    ("cancel_requested_at", "timestamptz"),
    ("callback_url", "text"),
)
ITEM_COLUMNS = (
    ("job_id", "uuid"),
    ("item_index", "integer"),
    ("submitted", "boolean"),
    ("input_data", "jsonb"),
    ("submitted_at", "timestamptz"),
    ("status", "text"),
    ("output_data", "jsonb"),
    ("error_code", "text"),
    ("error_message", "text"),
    ("attempts", "integer"),
    ("duration_ms", "double precision"),
    ("processed_at", "timestamptz"),
)


def staging_table(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    """The temporary table a COPY of ``columns`` goes into, emptied at each commit."""
    body = ", ".join(f"{column} {sql_type}" for column, sql_type in columns)
    return f"CREATE TEMP TABLE IF NOT EXISTS {name} ({body}) ON COMMIT DELETE ROWS;"


def copy_into(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    return f"COPY {name} ({', '.join(column for column, _ in columns)}) FROM STDIN"


def escape(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


def _json(value: Any) -> str:
    return NULL if value is None else escape(orjson.dumps(value).decode())


def _scalar(value: Any) -> str:
    """A UUID or datetime, as orjson writes it (without its quotes)."""
    return NULL if value is None else orjson.dumps(value)[1:-1].decode()


def _text(value: str | None) -> str:
    return NULL if value is None else escape(value)


def item_lines(items: Iterable[ItemChange]) -> str:
    lines: list[str] = []
    append = lines.append
    job_texts: dict[int, str] = {}  # by the job id's int: hashing a UUID runs Python code
    for i in items:
        job = job_texts.get(i.job_id.int)
        if job is None:
            job = job_texts[i.job_id.int] = str(i.job_id)
        append(
            f"{job}\t{i.item_index}\t{'t' if i.submitted else 'f'}\t{_json(i.input_data)}\t"
            f"{_scalar(i.submitted_at)}\t{i.status or NULL}\t{_json(i.output_data)}\t"
            f"{_text(i.error_code)}\t{_text(i.error_message)}\t{i.attempts}\t"
            f"{NULL if i.duration_ms is None else repr(float(i.duration_ms))}\t"
            f"{_scalar(i.processed_at)}\n"
        )
    return "".join(lines)


def job_lines(jobs: Iterable[JobChange]) -> str:
    lines: list[str] = []
    for j in jobs:
        s = j.submitted
        if s is None:
            fields = [str(j.job_id), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL]
        else:
            fields = [
                str(j.job_id),
                escape(s.user_id),
                s.job_type,
                str(s.total_items),
                _json(s.metadata),
                _scalar(s.retry_of),
                _scalar(s.occurred_at),
                s.priority,
                _text(s.callback_url),
            ]
        fields.insert(8, _scalar(j.cancel_requested_at))
        lines.append("\t".join(fields) + "\n")
    return "".join(lines)
