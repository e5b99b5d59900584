"""Hostile requests against a running ``batchctl api`` (uvicorn, real Kafka and PostgreSQL):
the requests that used to take the stack down or answer 500/503 each get their 4xx and
publish nothing; uploads that stall are cut off; progress streams are capped, end on time,
and end once their key is revoked."""

import json
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key, revoke_key
from tests.e2e.test_batchctl_run import _ready, free_port
from tests.integration.conftest import end_offsets_total, wait_for

HASH = "0" * 64


@pytest.fixture
def served(processes, stack_env) -> Iterator[str]:  # type: ignore[no-untyped-def]
    port = free_port()
    processes.start(
        "api",
        "--port",
        str(port),
        API_MAX_STREAMS_PER_KEY="1",
        API_STREAM_MAX_S="2",
        API_STREAM_KEY_CHECK_S="0.3",
        API_UPLOAD_IDLE_TIMEOUT_S="1",
    )
    wait_for(lambda: _ready(port), 60, "the API to be ready")
    yield f"http://127.0.0.1:{port}"


@pytest.fixture
def key(engine) -> tuple[str, uuid.UUID]:  # type: ignore[no-untyped-def]
    with sessionmaker(engine)() as session:
        new = create_key(session, user_id=f"hostile-{uuid.uuid4().hex[:6]}")
    return new.secret, new.key_id


def _accepted_jobs(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM accepted_jobs")).scalar_one())


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        # each of these was a 202, a 500 or a 503 before
        ('{"job_type": "query", "items": [{"device_id": "\\u0000"}]}', 422, "U+0000"),
        (
            f'{{"job_type": "query", "items": [{{"content_hash": "{HASH}"}}],'
            ' "metadata": {"a": "\\u0000"}}',
            422,
            "metadata",
        ),
        (
            f'{{"job_type": "query", "items": [{{"content_hash": "{HASH}"}}],'
            ' "metadata": {"a": NaN}}',
            422,
            "NaN",
        ),
        (
            f'{{"job_type": "query", "items": [{{"content_hash": "{HASH}"}}],'
            f' "metadata": {{"a": "{"x" * 1_100_000}"}}}}',
            413,
            "metadata",
        ),
        (
            f'{{"job_type": "query", "items": [{{"content_hash": "{HASH}"}}],'
            f' "metadata": {{"n": 1{"0" * 30}}}}}',
            422,
            "64 bits",
        ),
    ],
    ids=["nul-in-item", "nul-in-metadata", "nan-in-metadata", "big-metadata", "huge-number"],
)
def test_hostile_bodies_get_their_4xx_and_publish_nothing(
    served, key, engine, kafka_settings, body, status, needle
):
    events_before, accepted_before = end_offsets_total(kafka_settings), _accepted_jobs(engine)
    response = httpx.post(
        f"{served}/batch/jobs",
        content=body.encode(),
        headers={"Authorization": f"Bearer {key[0]}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == status, response.text
    assert needle in response.text
    assert response.json()["error"]
    assert end_offsets_total(kafka_settings) == events_before
    assert _accepted_jobs(engine) == accepted_before


def test_an_upload_that_stalls_is_cut_off_with_408(served, key):
    with socket.create_connection(("127.0.0.1", int(served.rsplit(":", 1)[1])), timeout=10) as s:
        head = (
            "POST /batch/jobs?job_type=query HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {key[0]}\r\nContent-Type: application/x-ndjson\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        line = f'{{"content_hash": "{HASH}"}}\n'.encode()
        s.sendall(head.encode() + b"%x\r\n%s\r\n" % (len(line), line))
        started = time.monotonic()
        answer = _response(s)  # and then nothing more is sent
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "no data for 1s" in answer and time.monotonic() - started < 10


def _response(s: socket.socket) -> str:
    """A whole HTTP response (its head and a body of its Content-Length), however it comes
    in pieces."""
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
        piece = s.recv(65536)
        if not piece:
            break
        data += piece
    return data.decode()


def _expected_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value.strip())
    return len(data)


def _job(served: str, secret: str) -> str:
    response = httpx.post(
        f"{served}/batch/jobs",
        json={"job_type": "scripted", "items": [{"token": "t"}]},  # no worker: stays pending
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["batch_job_id"])


def test_progress_streams_are_capped_per_key_and_end_on_time(served, key):
    secret = key[0]
    auth = {"Authorization": f"Bearer {secret}"}
    job = _job(served, secret)
    url = f"{served}/batch/jobs/{job}/events"
    with httpx.stream("GET", url, headers=auth, timeout=30) as first:
        assert first.status_code == 200
        second = httpx.get(url, headers=auth, timeout=10)
        assert second.status_code == 429 and second.headers["Retry-After"]
        assert second.json()["error"] == "too_many_streams"
        started = time.monotonic()
        body = b"".join(first.iter_bytes())  # ends by itself
    assert 1.5 < time.monotonic() - started < 10
    assert b"event: progress" in body and b"reconnect" in body
    again = httpx.get(url, headers=auth, timeout=10)  # its slot is free again
    assert again.status_code == 200


def test_a_revoked_keys_stream_ends(served, key, engine):
    secret, key_id = key
    job = _job(served, secret)
    url = f"{served}/batch/jobs/{job}/events"
    with httpx.stream(
        "GET", url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    ) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("id:")
        with sessionmaker(engine)() as session:
            assert revoke_key(session, key_id=key_id)
        revoked_at = time.monotonic()
        rest = "\n".join(lines)
    assert "event: error" in rest and json.dumps("not_authenticated") in rest
    assert time.monotonic() - revoked_at < 2.5  # within the key check's period, not its hour
