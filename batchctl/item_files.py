"""Batch files as ``batchctl submit`` reads them, streamed as NDJSON lines: ``.jsonl`` /
``.ndjson`` (one item per line, passed on as they are), ``.csv`` (a header row; one item per
row, empty cells left out) and ``.json`` (an array of items, or ``{"items": [...]}``)."""

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson


class UnreadableFile(Exception):
    pass


def _jsonl(path: Path, progress: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as lines:
        for line in lines:
            progress(len(line))
            if line.strip():
                yield line if line.endswith(b"\n") else line + b"\n"


def _csv(path: Path, progress: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        reader = csv.DictReader(text)
        if not reader.fieldnames:
            raise UnreadableFile(f"{path}: no header row")
        done = 0
        for number, row in enumerate(reader, 2):
            if None in row:
                raise UnreadableFile(f"{path}, line {number}: more cells than the header has")
            yield orjson.dumps({k: v for k, v in row.items() if v != ""}) + b"\n"
            position = raw.tell()
            progress(position - done)
            done = position


def _json(path: Path, progress: Callable[[int], None]) -> Iterator[bytes]:
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise UnreadableFile(f"{path}: not JSON ({exc})") from None
    items = document.get("items") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise UnreadableFile(f'{path}: want a JSON array of items, or {{"items": [...]}}')
    progress(path.stat().st_size)
    for item in items:
        yield orjson.dumps(item) + b"\n"


READERS = {".jsonl": _jsonl, ".ndjson": _jsonl, ".csv": _csv, ".json": _json}


def read_items(path: Path, progress: Callable[[int], None] = lambda n: None) -> Iterator[bytes]:
    """The file's items as NDJSON lines; ``progress`` is told how many bytes were read."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UnreadableFile(f"{path}: use a .jsonl, .ndjson, .csv or .json file")
    if not path.is_file():
        raise UnreadableFile(f"{path}: no such file")
    return reader(path, progress)
