"""Rows to PostgreSQL's COPY text format (tab-separated, ``\\N`` for NULL)."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int | float | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode().translate(_ESCAPES)
    raise TypeError(f"cannot COPY a {type(value).__name__}")


def copy_text(rows: Iterable[tuple[Any, ...]]) -> str:
    return "".join("\t".join(_field(v) for v in row) + "\n" for row in rows)
