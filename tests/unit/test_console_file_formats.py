"""The console's upload formats become the NDJSON the API spools, line for line: a CSV
record's line is the file's line (its header and the extra lines of quoted newlines become
blank lines), so the API's errors name the file's own lines."""

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from ingest_api.console.file_formats import csv_as_ndjson, json_as_ndjson
from ingest_api.errors import InvalidBatch, TooLarge


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _csv(data: bytes, size: int = 7, limit: int = 1 << 16) -> list[str]:
    async def run() -> bytes:
        return b"".join([piece async for piece in csv_as_ndjson(_pieces(data, size), limit)])

    return asyncio.run(run()).decode().split("\n")


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_csv_records_become_objects_on_the_files_own_lines(size):
    data = (
        "\ufeffdevice_id,public_key,label\r\n"
        "d-1,AAAA,first\r\n"
        '"d-2","BBBB","a label, with a comma"\r\n'
        '"d-3",CCCC,"two\nlines"\r\n'
        "d-4,DDDD,\r\n"
        "\r\n"
        "d-5,EEEE,last"
    ).encode()
    lines = _csv(data, size)
    assert lines[0] == ""  # the header
    assert orjson.loads(lines[1]) == {"device_id": "d-1", "public_key": "AAAA", "label": "first"}
    assert orjson.loads(lines[2])["label"] == "a label, with a comma"
    assert orjson.loads(lines[3])["label"] == "two\nlines"
    assert lines[4] == ""  # the quoted newline's second line
    assert orjson.loads(lines[5]) == {"device_id": "d-4", "public_key": "DDDD"}  # empty: left out
    assert lines[6] == ""
    assert orjson.loads(lines[7])["device_id"] == "d-5"


def test_a_csv_record_with_more_cells_than_the_header_is_named_by_line():
    with pytest.raises(InvalidBatch, match="line 3: 3 cells"):
        _csv(b"a,b\n1,2\n1,2,3\n")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,,b\n1,2,3\n", "name each column once"),
        (b"a,a\n1,2\n", "name each column once"),
        (b'a,b\n1,"never closed\n', "never closed"),
        (b"a,b\n\xff\xfe,1\n", "not UTF-8"),
    ],
)
def test_a_broken_csv_file_is_refused_with_the_reason(data, message):
    with pytest.raises(InvalidBatch, match=message):
        _csv(data)


def test_a_csv_record_past_the_item_limit_is_refused_before_it_is_buffered_whole():
    with pytest.raises(TooLarge, match="line 2"):
        _csv(b"a\n" + b'"' + b"x\n" * 5000, limit=1000)


def _json(data: bytes, limit: int = 1 << 20) -> list[bytes]:
    async def run() -> bytes:
        return b"".join([piece async for piece in json_as_ndjson(_pieces(data, 5), limit)])

    return asyncio.run(run()).splitlines()


def test_a_json_file_is_an_array_of_items_or_an_object_with_items():
    assert [orjson.loads(line) for line in _json(b'[{"n": 1}, {"n": 2}]')] == [{"n": 1}, {"n": 2}]
    assert [orjson.loads(line) for line in _json(b'{"items": [{"n": 3}]}')] == [{"n": 3}]


@pytest.mark.parametrize("data", [b"{", b'"text"', b'{"no_items": []}', b"[" * 5000 + b"]" * 5000])
def test_a_json_file_that_holds_no_items_is_refused(data):
    with pytest.raises(InvalidBatch):
        _json(data)


def test_a_json_file_past_the_body_limit_is_refused():
    with pytest.raises(TooLarge):
        _json(b"[" + b'{"n": 1},' * 1000 + b"{}]", limit=1000)
