"""The console's upload formats as the NDJSON stream the API spools (``submit_ndjson``):
a ``.jsonl`` file is that already; a ``.csv`` file's header names the fields and each record
becomes an object of its non-empty cells (strings: the job type's schema converts numbers and
booleans); a ``.json`` file is an array of items, or an object with ``items``.

A CSV record becomes one line, followed by a blank line for each extra line it spanned
(quoted newlines) and the header by a blank one, so the line numbers of the API's errors are
the file's own."""

import codecs
import csv
from collections.abc import AsyncIterator
from typing import Literal

import orjson

from ingest_api.errors import InvalidBatch, TooLarge

FileFormat = Literal["jsonl", "csv", "json"]


async def csv_as_ndjson(
    stream: AsyncIterator[bytes], max_record_bytes: int
) -> AsyncIterator[bytes]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    header: list[str] | None = None
    record: list[str] = []  # the lines of a record whose quotes are still open
    quotes = size = 0
    line_number = 0
    pending = ""
    async for piece in stream:
        try:
            pending += decoder.decode(piece)
        except UnicodeDecodeError:
            raise InvalidBatch(f"line {line_number + 1}: the CSV file is not UTF-8") from None
        *lines, pending = pending.split("\n")
        out = []
        for line in lines:
            line_number += 1
            record.append(line)
            quotes += line.count('"')
            size += len(line)
            if size > max_record_bytes:
                first = line_number - len(record) + 1
                raise TooLarge(f"line {first}: a CSV record over {max_record_bytes} bytes")
            if quotes % 2:
                continue  # a quoted field goes on on the next line
            header, converted = _record(record, header, line_number)
            out.append(converted)
            record, quotes, size = [], 0, 0
        if out:
            yield b"".join(out)
    if len(pending) > max_record_bytes:
        raise TooLarge(f"line {line_number + 1}: a CSV record over {max_record_bytes} bytes")
    if pending.strip() or record:
        record.append(pending)
        if (quotes + pending.count('"')) % 2:
            raise InvalidBatch(f"line {line_number + 1}: a quoted CSV field is never closed")
        yield _record(record, header, line_number + 1)[1]


def _record(
    lines: list[str], header: list[str] | None, last_line: int
) -> tuple[list[str] | None, bytes]:
    """(the header, the record's NDJSON line(s)): blank lines keep the file's numbering."""
    padding = b"\n" * len(lines)
    text = "\n".join(line.removesuffix("\r") for line in lines)
    if not text.strip():
        return header, padding
    try:
        cells = next(csv.reader([text]))
    except (csv.Error, StopIteration) as exc:
        raise InvalidBatch(f"line {last_line}: not a CSV record: {exc}") from None
    if header is None:
        names = [name.strip() for name in cells]
        if not all(names) or len(set(names)) != len(names):
            raise InvalidBatch("line 1: the CSV header must name each column once")
        return names, padding
    if len(cells) > len(header):
        raise InvalidBatch(
            f"line {last_line}: {len(cells)} cells, but the header names {len(header)} columns"
        )
    item = {name: cell for name, cell in zip(header, cells, strict=False) if cell != ""}
    return header, orjson.dumps(item) + padding


async def json_as_ndjson(stream: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    body = bytearray()
    async for piece in stream:
        body += piece
        if len(body) > max_bytes:
            raise TooLarge(f"a .json file over {max_bytes} bytes: upload it as .jsonl")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidBatch(f"the file is not JSON: {exc}") from None
    if isinstance(document, dict):
        document = document.get("items")
    if not isinstance(document, list):
        raise InvalidBatch("a .json file holds an array of items, or an object with 'items'")
    for start in range(0, len(document), 1000):
        yield b"".join(orjson.dumps(item) + b"\n" for item in document[start : start + 1000])
