"""Hostile requests at the API's edge: each gets a 4xx that says what and where, and nothing
is published (a fake publisher in place of Kafka, a fixed caller)."""

import asyncio
import time
from uuid import uuid4

import orjson
import pytest
from fastapi.testclient import TestClient

from events.limits import MAX_JSON_DEPTH
from ingest_api import upload
from ingest_api.app import create_app
from ingest_api.deps import Caller, get_caller
from ingest_api.errors import TooManyStreams, UploadTimedOut
from ingest_api.settings import ApiSettings
from ingest_api.stream_slots import StreamSlots
from tests.unit.test_api_validation import (  # noqa: F401
    SETTINGS,
    FakePublisher,
    accepted_jobs,
    queued,
)

HASH = "0" * 64
NDJSON = {"Content-Type": "application/x-ndjson"}


def _app(publisher: FakePublisher, **settings: object) -> TestClient:
    app = create_app(SETTINGS.model_copy(update=settings), publisher=publisher)
    app.dependency_overrides[get_caller] = lambda: Caller("alice", "hash")
    return TestClient(app)


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def client(publisher):
    with _app(publisher) as client:
        yield client


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _body(items: str = f'[{{"content_hash": "{HASH}"}}]', metadata: str | None = None) -> bytes:
    tail = f', "metadata": {metadata}' if metadata is not None else ""
    return f'{{"job_type": "query", "items": {items}{tail}}}'.encode()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_body(metadata='{"note": "a\\u0000b"}'), "U+0000"),
        (_body(metadata='{"note": "\\u001b[31m"}'), "U+001B"),
        (_body(metadata='{"k\\u0001": 1}'), "U+0001"),
        (_body(metadata='{"n": NaN}'), "NaN"),
        (_body(metadata='{"n": [Infinity]}'), "NaN and infinity"),
        (_body(metadata='{"n": 1e999}'), "NaN and infinity"),
        (_body(metadata='{"n": 9223372036854775808}'), "64 bits"),
        (_body(metadata='{"n": -9223372036854775809}'), "64 bits"),
        (_body(metadata=orjson.dumps(_nested(MAX_JSON_DEPTH + 1)).decode()), "nested deeper"),
    ],
)
def test_metadata_past_the_limits_is_422_naming_metadata(client, publisher, body, needle):
    response = client.post(
        "/batch/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "metadata" in response.json()["detail"] and needle in response.text
    assert publisher.published == []


def test_metadata_within_the_limits_is_kept(client, publisher):
    metadata = {"note": "tab\tand newline\n", "n": 2**63 - 1, "deep": _nested(MAX_JSON_DEPTH - 1)}
    response = client.post("/batch/jobs", content=_body(metadata=orjson.dumps(metadata).decode()))
    assert response.status_code == 202, response.text
    assert publisher.published[-1].event.metadata == metadata


def test_metadata_past_its_size_limit_is_413_and_nothing_is_published(client, publisher):
    big = orjson.dumps({"blob": "x" * 1_100_000}).decode()
    response = client.post("/batch/jobs", content=_body(metadata=big))
    assert response.status_code == 413
    assert "metadata" in response.json()["detail"]
    assert publisher.published == []


@pytest.mark.parametrize(
    ("items", "index", "field"),
    [
        (f'[{{"content_hash": "{HASH}"}}, {{"device_id": "\\u0000"}}]', 1, "device_id"),
        ('[{"device_id": "ok\\u0007"}]', 0, "device_id"),
    ],
)
def test_an_item_past_the_limits_is_422_naming_the_item_and_field(
    client, publisher, items, index, field
):
    response = client.post("/batch/jobs", content=_body(items=items))
    assert response.status_code == 422, response.text
    (invalid,) = response.json()["invalid_items"]
    assert invalid["item_index"] == index and invalid["message"].startswith(field)
    assert publisher.published == []


def test_an_enrollment_label_with_an_escape_sequence_is_named(client, publisher):
    item = {"device_id": "d", "public_key": "QUJD", "label": "\x1b]0;pwned\x07"}
    response = client.post("/batch/jobs", json={"job_type": "enrollment", "items": [item]})
    assert response.status_code == 422
    assert response.json()["invalid_items"][0]["message"].startswith("label")
    assert publisher.published == []


def test_an_ndjson_line_past_the_limits_is_named_by_index(client, publisher):
    good = b'{"content_hash": "%s"}' % HASH.encode()
    body = b"\n".join([good, good, b'{"device_id": "\\u0000"}', good]) + b"\n"
    response = client.post("/batch/jobs?job_type=query", content=body, headers=NDJSON)
    assert response.status_code == 422
    assert [(e["item_index"], e["line"]) for e in response.json()["invalid_items"]] == [(2, 3)]
    assert publisher.published == []


@pytest.mark.parametrize(
    "params", [{"metadata": "\x00"}, {"job_type": "noop"}, {"priority": "bulk"}, {"metadata": ""}]
)
def test_upload_parameters_with_a_json_body_are_refused_not_ignored(client, publisher, params):
    response = client.post("/batch/jobs", params=params, content=_body())
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_batch"
    assert f"{next(iter(params))} as query parameters are for NDJSON uploads" in response.text
    assert publisher.published == []


@pytest.mark.parametrize(
    "metadata", ['{"a": "\\u0000"}', '{"a": NaN}', '{"a": 99999999999999999999}', "[]"]
)
def test_an_ndjson_uploads_metadata_past_the_limits_is_422(client, publisher, metadata):
    body = b'{"content_hash": "%s"}\n' % HASH.encode()
    response = client.post(
        "/batch/jobs", params={"job_type": "query", "metadata": metadata}, content=body,
        headers=NDJSON,
    )  # fmt: skip
    assert response.status_code == 422
    assert "metadata" in response.json()["detail"]
    assert publisher.published == []


def test_an_upload_past_its_byte_limit_is_413(publisher):
    line = b'{"content_hash": "%s"}\n' % HASH.encode()
    with _app(publisher, api_max_upload_bytes=10 * len(line)) as small:
        response = small.post("/batch/jobs?job_type=query", content=line * 11, headers=NDJSON)
    assert response.status_code == 413 and "bytes" in response.json()["detail"]
    assert publisher.published == []


def test_blank_lines_count_toward_the_line_limit(publisher):
    body = b'{"content_hash": "%s"}\n' % HASH.encode() + b"\n" * 50
    with _app(publisher, api_max_items_per_upload=20) as small:
        response = small.post("/batch/jobs?job_type=query", content=body, headers=NDJSON)
    assert response.status_code == 413 and "lines" in response.json()["detail"]
    assert publisher.published == []


def _spool(pieces, **limits: float) -> upload.Spool:  # type: ignore[no-untyped-def]
    from archive_jobs.query import QueryHandler

    bounds = {"idle_timeout_s": 30.0, "timeout_s": 60.0, **limits}
    return asyncio.run(
        upload.spool_ndjson(
            pieces,
            QueryHandler.__new__(QueryHandler),
            job_id=uuid4(),
            limits=upload.UploadLimits(64 << 10, 100, 1 << 20, **bounds),
            salt=b"",
        )
    )


LINE = b'{"content_hash": "%s"}\n' % HASH.encode()


def test_an_upload_that_stalls_is_refused_as_timed_out():
    async def stalling():  # type: ignore[no-untyped-def]
        yield LINE
        await asyncio.sleep(1.0)
        yield LINE

    with pytest.raises(UploadTimedOut, match=r"no data for 0\.3s"):
        _spool(stalling(), idle_timeout_s=0.3)


def test_an_upload_past_its_time_limit_is_refused_as_timed_out():
    async def slow():  # type: ignore[no-untyped-def]
        for _ in range(8):
            yield LINE
            await asyncio.sleep(0.1)

    with pytest.raises(UploadTimedOut, match=r"longer than the limit of 0\.35s"):
        _spool(slow(), timeout_s=0.35)


def test_an_upload_within_its_time_limits_is_spooled():
    async def steady():  # type: ignore[no-untyped-def]
        for _ in range(3):
            yield LINE
            await asyncio.sleep(0.05)

    spool = _spool(steady(), idle_timeout_s=0.5, timeout_s=5)
    assert spool.count == 3
    spool.close()


def test_a_long_line_in_tiny_pieces_is_split_in_linear_time(monkeypatch):
    """60 KB lines sent a byte at a time: splitting them must not copy the line per piece
    (quadratic: 60 KB x 60,000 pieces = 3.6 GB of copying per line)."""
    line = b'{"pad": "' + b"x" * 60_000 + b'"}\n'
    taken: list[int] = []

    def take(lines, index, *args):  # type: ignore[no-untyped-def]
        lines = [line for line in lines if line.strip()]
        taken.extend(len(line) for line in lines)
        return index + len(lines)

    monkeypatch.setattr(upload, "_take", take)

    async def pieces():  # type: ignore[no-untyped-def]
        data = line * 3
        for i in range(len(data)):
            yield data[i : i + 1]

    limits = upload.UploadLimits(64 << 10, 10, 1 << 30, 30.0, 60.0)
    started = time.perf_counter()
    spool = asyncio.run(
        upload.spool_ndjson(pieces(), None, job_id=None, limits=limits, salt=b"")  # type: ignore[arg-type]
    )
    elapsed = time.perf_counter() - started
    spool.close()
    assert taken == [len(line) - 1] * 3
    assert elapsed < 10  # 180,000 pieces; quadratic copying would take minutes


def test_settings_keep_every_accepted_event_within_the_event_limit():
    with pytest.raises(ValueError, match="API_MAX_ITEM_BYTES"):
        ApiSettings(api_max_event_bytes=100_000, api_max_item_bytes=100_000)
    with pytest.raises(ValueError, match="API_MAX_METADATA_BYTES"):
        ApiSettings(api_max_event_bytes=100_000, api_max_metadata_bytes=99_500)
    ApiSettings(api_max_event_bytes=100_000, api_max_item_bytes=64 << 10)


def test_stream_slots_cap_per_key_and_in_all_and_free_on_release():
    slots = StreamSlots(per_key=2, total=3)
    a1, a2 = slots.take("a"), slots.take("a")
    with pytest.raises(TooManyStreams, match="per API key"):
        slots.take("a")
    b1 = slots.take("b")
    with pytest.raises(TooManyStreams, match="3 progress streams"):
        slots.take("c")
    a1()
    a1()  # released twice: counted once
    slots.take("c")
    assert slots.open == 3 and slots.open_by_key == {"a": 1, "b": 1, "c": 1}
    a2(), b1()


def test_a_held_stream_frees_its_slot_when_it_ends_or_is_dropped_unstarted():
    slots = StreamSlots(per_key=1, total=10)

    async def events():  # type: ignore[no-untyped-def]
        yield b"x"

    async def drain(stream):  # type: ignore[no-untyped-def]
        return [chunk async for chunk in stream]

    assert asyncio.run(drain(slots.holding("k", events()))) == [b"x"]
    assert slots.open == 0
    held = slots.holding("k", events())
    with pytest.raises(TooManyStreams):
        slots.holding("k", events())
    del held  # never started: the finaliser frees it
    assert slots.open == 0
    slots.holding("k", events())
