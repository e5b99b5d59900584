"""The web console's sign-in, sessions and checks over HTTP, on the real database and
broker (its pages in a real browser: ``tests/e2e/test_console_in_a_browser.py``)."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key, revoke_key

HTML = {"Accept": "text/html"}
HOSTILE = ["\x00", "a\x00b", "\x1b[2J", "9" * 30, "-1", "[" * 2000, "x" * 5000, "\ufffe"]


def _secret(engine, user: str, **options: Any) -> tuple[uuid.UUID, str]:
    with sessionmaker(engine)() as session:
        key = create_key(session, user_id=user, **options)
    return key.key_id, key.secret


def _browser(api: TestClient, base_url: str = "http://testserver") -> TestClient:
    """A client of the session's app with cookies of its own, as a browser has, on the
    session client's event loop (where the app's Kafka producer lives)."""
    browser = TestClient(api.app, base_url=base_url, follow_redirects=False)
    browser.portal = api.portal
    return browser


def _form_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _sign_in(browser: TestClient, secret: str, next_path: str = "/ui/jobs") -> httpx.Response:
    page = browser.get("/ui/sign-in", params={"next": next_path})
    assert page.status_code == 200
    return browser.post(
        "/ui/sign-in",
        data={"csrf_token": _form_token(page.text), "api_key": secret, "next": next_path},
    )


def _session_token(browser: TestClient, page: str = "/ui/jobs") -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', browser.get(page).text)
    assert found
    return found.group(1)


def _job(engine, user: str, status: str = "completed", items: int = 3) -> uuid.UUID:
    """A folded job with items, written straight into the tables."""
    job_id = uuid.uuid4()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, user_id, job_type, priority, status, total_items,"
                " processed_items, success_items, failed_items, created_at, started_at,"
                " completed_at) VALUES (:id, :user, 'query', 'bulk', :status, :n, :n, :ok, 1,"
                " :created, :started, :done)"
            ),
            {
                "id": job_id,
                "user": user,
                "status": status,
                "n": items,
                "ok": items - 1,
                "created": now - timedelta(seconds=30),
                "started": now - timedelta(seconds=20),
                "done": now if status == "completed" else None,
            },
        )
        for index in range(items):
            failed = index == items - 1
            conn.execute(
                text(
                    "INSERT INTO items (job_id, item_index, status, input_data, output_data,"
                    " error_code, error_message, attempts, duration_ms, processed_at,"
                    " unsuccessful) VALUES (:job, :i, :status, CAST(:input AS jsonb),"
                    " CAST(:output AS jsonb), :code, :message, 1, 2.5, :at, :failed)"
                ),
                {
                    "job": job_id,
                    "i": index,
                    "status": "failed" if failed else "success",
                    "input": orjson.dumps(
                        {"content_hash": f"{index:064x}", "note": 'a,"b"\n'}
                    ).decode(),
                    "output": None if failed else orjson.dumps({"found": False}).decode(),
                    "code": "not_found" if failed else None,
                    "message": "no such proof <script>alert(1)</script>" if failed else None,
                    "at": now - timedelta(seconds=20 - index * 5),
                    "failed": failed,
                },
            )
    return job_id


def test_sign_in_sets_a_strict_http_only_session_cookie_and_sign_out_ends_it(api, engine):
    _, secret = _secret(engine, "console-alice")
    browser = _browser(api)
    assert browser.get("/ui/jobs", headers=HTML).headers["location"].startswith("/ui/sign-in?next=")
    signed_in = _sign_in(browser, secret)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ui/jobs"
    cookie = next(
        c for c in signed_in.headers.get_list("set-cookie") if c.startswith("aob_console=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=strict" in cookie.lower() and "secure" not in attributes  # plain http
    token = browser.cookies["aob_console"]
    page = browser.get("/ui/jobs")
    assert page.status_code == 200 and "console-alice" in page.text
    assert page.headers["cache-control"] == "no-store"

    csrf = _session_token(browser)
    out = browser.post("/ui/sign-out", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/ui/sign-in"
    assert 'aob_console=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    # the old cookie is worth nothing: the session is gone from the database
    replayed = _browser(api)
    replayed.cookies.set("aob_console", token, path="/ui")
    assert replayed.get("/ui/jobs", headers=HTML).status_code == 303


def test_the_cookie_is_secure_over_tls(api, engine):
    _, secret = _secret(engine, "console-tls")
    signed_in = _sign_in(_browser(api, "https://testserver"), secret)
    cookie = next(
        c for c in signed_in.headers.get_list("set-cookie") if c.startswith("aob_console=")
    )
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


def test_a_wrong_key_or_a_missing_sign_in_token_signs_nobody_in(api, engine):
    browser = _browser(api)
    wrong = _sign_in(browser, "aob_not-a-key")
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert "aob_console=" not in wrong.headers.get("set-cookie", "")
    _, secret = _secret(engine, "console-csrf")
    fresh = _browser(api)
    fresh.get("/ui/sign-in")
    for data in ({"api_key": secret}, {"api_key": secret, "csrf_token": "forged"}):
        refused = fresh.post("/ui/sign-in", data=data)
        assert refused.status_code == 403 and "csrf_refused" in refused.text
    assert "aob_console" not in fresh.cookies


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/ui/\\evil"])
def test_signing_in_never_leaves_the_console(api, engine, target):
    _, secret = _secret(engine, "console-redirect")
    assert _sign_in(_browser(api), secret, target).headers["location"] == "/ui/jobs"


def test_a_revoked_key_or_an_expired_session_signs_the_browser_out(api, engine):
    key_id, secret = _secret(engine, "console-revoked")
    browser = _browser(api)
    _sign_in(browser, secret)
    assert browser.get("/ui/jobs").status_code == 200
    with sessionmaker(engine)() as session:
        revoke_key(session, key_id=key_id)
    assert browser.get("/ui/jobs", headers=HTML).status_code == 303
    assert browser.get("/ui/jobs", headers={"Accept": "application/json"}).status_code == 401

    _, secret = _secret(engine, "console-expired")
    browser = _browser(api)
    _sign_in(browser, secret)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE console_sessions SET expires_at = now() - interval '1 second'"
                " WHERE key_id IN (SELECT id FROM api_keys WHERE user_id = 'console-expired')"
            )
        )
    assert browser.get("/ui/jobs", headers=HTML).status_code == 303


def test_a_state_changing_form_without_its_csrf_token_is_refused(api, engine):
    _, secret = _secret(engine, "console-forms")
    browser = _browser(api)
    _sign_in(browser, secret)
    # a job with its events (its cancellation is an event too: later replays fold both)
    submitted = api.post(
        "/batch/jobs",
        headers={"Authorization": f"Bearer {secret}"},
        json={"job_type": "query", "items": [{"device_id": "d"}]},
    )
    job_id = submitted.json()["batch_job_id"]
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
        refused = browser.post(f"/ui/jobs/{job_id}/cancel", data=data, headers=HTML)
        assert refused.status_code == 403 and "csrf_refused" in refused.text
    assert browser.post("/ui/sign-out", data={}).status_code == 403
    assert browser.get("/ui/jobs").status_code == 200  # still signed in
    too_big = browser.post(
        f"/ui/jobs/{job_id}/cancel",
        content=b"csrf_token=" + b"x" * 20000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413
    token = _session_token(browser)
    accepted = browser.post(f"/ui/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert accepted.status_code == 303
    assert accepted.headers["location"] == f"/ui/jobs/{job_id}?notice=cancelling"


def test_a_user_sees_only_their_jobs_and_another_users_job_is_not_found(api, engine):
    _, alice = _secret(engine, "console-owner")
    _, bob = _secret(engine, "console-other")
    job_id = _job(engine, "console-owner")
    browser = _browser(api)
    _sign_in(browser, alice)
    mine = browser.get(f"/ui/jobs/{job_id}")
    assert mine.status_code == 200
    assert "no such proof &lt;script&gt;" in mine.text  # escaped, never markup
    assert "<script>alert" not in mine.text
    assert str(job_id) in browser.get("/ui/jobs").text

    other = _browser(api)
    _sign_in(other, bob)
    for path in (
        f"/ui/jobs/{job_id}",
        f"/ui/jobs/{job_id}/download?format=csv",
        f"/ui/jobs/{job_id}/throughput.svg",
    ):
        answer = other.get(path, headers=HTML)
        assert answer.status_code == 404, path
        assert str(job_id) not in other.get("/ui/jobs").text
    token = _session_token(other)
    assert other.post(f"/ui/jobs/{job_id}/cancel", data={"csrf_token": token}).status_code == 404
    assert other.post(f"/ui/jobs/{job_id}/retry", data={"csrf_token": token}).status_code == 404


def test_downloads_stream_every_item_as_csv_or_json_lines(api, engine):
    _, secret = _secret(engine, "console-download")
    job_id = _job(engine, "console-download", items=12)
    headers = {"Authorization": f"Bearer {secret}"}
    rest = api.get(f"/batch/jobs/{job_id}/export", headers=headers, params={"format": "csv"})
    assert rest.status_code == 200 and rest.headers["content-type"].startswith("text/csv")
    assert f'filename="job-{job_id}-items.csv"' in rest.headers["content-disposition"]
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(rest.text)))
    assert [int(r["item_index"]) for r in rows] == list(range(12))
    assert orjson.loads(rows[0]["input"])["note"] == 'a,"b"\n'
    assert rows[11]["error_code"] == "not_found" and rows[11]["output"] == ""

    lines = api.get(f"/batch/jobs/{job_id}/export", headers=headers).text.splitlines()
    assert [orjson.loads(line)["item_index"] for line in lines] == list(range(12))
    failed = api.get(
        f"/batch/jobs/{job_id}/export", headers=headers, params={"status": "failed"}
    ).text.splitlines()
    assert [orjson.loads(line)["status"] for line in failed] == ["failed"]

    browser = _browser(api)
    _sign_in(browser, secret)
    page = browser.get(f"/ui/jobs/{job_id}/download", params={"format": "jsonl"})
    assert page.status_code == 200 and page.text.count("\n") == 12
    _, other = _secret(engine, "console-download-other")
    assert (
        api.get(
            f"/batch/jobs/{job_id}/export", headers={"Authorization": f"Bearer {other}"}
        ).status_code
        == 404
    )


def test_the_jobs_list_filters_by_status_and_job_type(api, engine):
    _, secret = _secret(engine, "console-filters")
    done = _job(engine, "console-filters")
    running = _job(engine, "console-filters", status="processing")
    browser = _browser(api)
    _sign_in(browser, secret)
    page = browser.get("/ui/jobs", params={"status": "processing"}).text
    assert str(running) in page and str(done) not in page
    assert str(done) not in browser.get("/ui/jobs", params={"job_type": "enrollment"}).text
    headers = {"Authorization": f"Bearer {secret}"}
    listed = api.get("/batch/jobs", headers=headers, params={"job_type": "query"}).json()
    assert {j["batch_job_id"] for j in listed["jobs"]} == {str(done), str(running)}


def test_hostile_query_parameters_get_a_clear_error_not_a_500(api, engine):
    _, secret = _secret(engine, "console-hostile")
    browser = _browser(api)
    _sign_in(browser, secret)
    job_id = _job(engine, "console-hostile")
    for value in [*HOSTILE, "%ED%A0%80", "%FF"]:  # the last two: a lone surrogate, not UTF-8
        for path, name in (
            ("/ui/jobs", "status"),
            ("/ui/jobs", "job_type"),
            ("/ui/jobs", "cursor"),
            (f"/ui/jobs/{job_id}", "items_status"),
            (f"/ui/jobs/{job_id}", "notice"),
        ):
            encoded = value if value.startswith("%") else quote(value, safe="")
            answer = browser.get(f"{path}?{name}={encoded}")
            assert answer.status_code in (200, 422), (path, name, answer.status_code)
    headers = {"Authorization": f"Bearer {secret}"}
    for value in ("\x00", "query\x00", "Q" * 100):
        assert (
            api.get("/batch/jobs", headers=headers, params={"job_type": value}).status_code == 422
        )
    many = [("job", str(uuid.uuid4())) for _ in range(101)]
    assert browser.get("/ui/events", params=many).status_code == 422


def test_the_console_submits_a_file_and_names_invalid_items_by_line(api, engine):
    _, secret = _secret(engine, "console-submit")
    browser = _browser(api)
    _sign_in(browser, secret)
    token = _session_token(browser, "/ui/submit")
    headers = {"X-CSRF-Token": token, "Accept": "application/json"}
    bad = b"content_hash\n" + b"ab" * 32 + b"\nnot-a-hash\n" + b"cd" * 32 + b"\n"
    refused = browser.post(
        "/ui/submit", params={"job_type": "query", "format": "csv"}, content=bad, headers=headers
    )
    assert refused.status_code == 422, refused.text
    assert [(e["line"], e["item_index"]) for e in refused.json()["invalid_items"]] == [(3, 1)]

    ndjson = b'{"content_hash": "' + b"ab" * 32 + b'"}\n\n{"content_hash": 5}\n'
    refused = browser.post(
        "/ui/submit",
        params={"job_type": "query", "format": "jsonl"},
        content=ndjson,
        headers=headers,
    )
    assert [e["line"] for e in refused.json()["invalid_items"]] == [3]

    good = b"content_hash\n" + b"ab" * 32 + b"\n" + b"cd" * 32 + b"\n"
    accepted = browser.post(
        "/ui/submit", params={"job_type": "query", "format": "csv"}, content=good, headers=headers
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["total_items"] == 2
    no_token = browser.post(
        "/ui/submit",
        params={"job_type": "query", "format": "csv"},
        content=good,
        headers={"Accept": "application/json"},
    )
    assert no_token.status_code == 403


def test_the_operator_page_is_for_operators_keys(api, engine):
    _, user = _secret(engine, "console-not-ops")
    _, ops = _secret(engine, "console-ops", operator=True)
    browser = _browser(api)
    _sign_in(browser, user)
    assert browser.get("/ui/operator", headers=HTML).status_code == 403
    token = _session_token(browser)
    assert browser.post("/ui/operator/redrive", data={"csrf_token": token}).status_code == 403
    operator = _browser(api)
    _sign_in(operator, ops)
    page = operator.get("/ui/operator")
    assert page.status_code == 200, page.text
    assert "workers.query" in page.text and "projector.main" in page.text
    assert "Dead letters" in page.text


def test_an_operator_redrives_a_reasons_letters_from_the_console(api, engine, kafka_settings):
    """A letter whose event belongs on the topic it came from goes back there, with the
    header that says it was redriven; one that belongs on no topic stays."""
    import asyncio

    from events.codec import encode
    from events.models import ItemSubmitted, JobSubmitted
    from streaming.clients import make_producer
    from streaming.dead_letters import HEADER_KEY, HEADER_REASON, HEADER_TOPIC
    from tests.integration.test_dlq_cli import last_record

    reason = f"console_{uuid.uuid4().hex[:8]}"
    topic = kafka_settings.topics.items("noop")  # no test serves it: the redriven event rests
    key = f"console-{reason}".encode()
    job_id = uuid.uuid4()
    event = encode(ItemSubmitted.new(job_id=job_id, item_index=0, job_type="noop", input={}))
    # its job too, so that the replays of later tests fold the item of a known job
    job = encode(
        JobSubmitted.new(job_id=job_id, job_type="noop", user_id="console-redriver", total_items=1)
    )

    async def write_letters() -> None:
        producer = make_producer(kafka_settings)
        await producer.start()
        try:
            await producer.send_and_wait(
                kafka_settings.topics.jobs, value=job, key=str(job_id).encode()
            )
            headers = [(HEADER_TOPIC, topic.encode()), (HEADER_REASON, reason.encode())]
            for value in (event, b"{not an event"):
                await producer.send_and_wait(
                    kafka_settings.topics.dlq,
                    value=value,
                    key=key,
                    headers=[*headers, (HEADER_KEY, key)],
                )
        finally:
            await producer.stop()

    asyncio.run(write_letters())
    _, ops = _secret(engine, "console-redriver", operator=True)
    operator = _browser(api)
    _sign_in(operator, ops)
    page = operator.get("/ui/operator").text
    assert f"<code>{reason}</code></td><td>2</td>" in page
    done = operator.post(
        "/ui/operator/redrive", data={"csrf_token": _session_token(operator), "reason": reason}
    )
    assert done.status_code == 303
    notice = operator.get(done.headers["location"]).text
    assert f"redrove 1 letters of reason &#39;{reason}&#39;" in notice
    assert "1 belong on no topic" in notice
    record = asyncio.run(last_record(kafka_settings, topic, key))
    assert record is not None and record.value == event
    assert any(name == "dlq.redriven.from" for name, _ in record.headers)


def test_a_job_just_accepted_is_listed_before_it_is_folded(api, engine):
    """No projector runs in this test: the job exists only as accepted, and the first page
    of the list (REST and console) shows it as pending; other filters do not."""
    _, secret = _secret(engine, "console-unfolded")
    headers = {"Authorization": f"Bearer {secret}"}
    accepted = api.post(
        "/batch/jobs", headers=headers, json={"job_type": "query", "items": [{"device_id": "d"}]}
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["batch_job_id"]
    listed = api.get("/batch/jobs", headers=headers).json()["jobs"]
    assert [(j["batch_job_id"], j["status"]) for j in listed] == [(job_id, "pending")]
    for params in ({"status": "completed"}, {"job_type": "enrollment"}):
        assert api.get("/batch/jobs", headers=headers, params=params).json()["jobs"] == []
    browser = _browser(api)
    _sign_in(browser, secret)
    assert job_id in browser.get("/ui/jobs").text
