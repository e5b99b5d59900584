"""The API's edge, with a fake publisher in place of Kafka and a fixed caller."""

import json
from types import SimpleNamespace
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient

from events.codec import decode
from events.models import ItemSubmitted, JobSubmitted
from ingest_api.app import create_app
from ingest_api.deps import Caller, get_caller
from ingest_api.publisher import Outgoing, PublishError
from ingest_api.settings import ApiSettings

SETTINGS = ApiSettings(
    database_url="postgresql+psycopg2://nobody@127.0.0.1:1/none",
    BATCH_TOPIC_PREFIX="t.",
    api_max_items_per_request=50,
    api_interactive_default_max_items=10,
    api_interactive_max_items=20,
)


class FakePublisher:
    def __init__(self, fail: bool = False):
        self.published: list[Outgoing] = []
        self.fail = fail

    async def publish(self, messages):
        if self.fail:
            raise PublishError("broker down")
        self.published.extend(messages)


@pytest.fixture
def publisher():
    return FakePublisher()


@pytest.fixture(autouse=True)
def accepted_jobs(monkeypatch):
    """The API's record of accepted jobs, in memory (these tests run without a database)."""
    from ingest_api import acceptance

    jobs: dict = {}

    async def record(recorder, *, job_id, idempotency_key, digest, **fields):
        job = SimpleNamespace(
            job_id=job_id,
            idempotency_key=idempotency_key,
            request_hash=digest,
            published_at=None,
            total_items=fields["total_items"],
            priority=fields.get("priority", "bulk"),
        )
        jobs[job_id] = job
        return job

    async def find(recorder, *, user_id, idempotency_key):
        return next((j for j in jobs.values() if j.idempotency_key == idempotency_key), None)

    async def mark_published(recorder, *, job_id):
        jobs[job_id].published_at = "now"

    monkeypatch.setattr(acceptance.Recorder, "record", record)
    monkeypatch.setattr(acceptance.Recorder, "find", find)
    monkeypatch.setattr(acceptance.Recorder, "mark_published", mark_published)
    return jobs


@pytest.fixture(autouse=True)
def queued(monkeypatch):
    """The items each user has queued (no database here): ``queued[user] = n``."""
    from ingest_api import quota

    counts: dict[str, int] = {}

    async def queued_items(statements, user):  # type: ignore[no-untyped-def]
        return counts.get(user, 0)

    monkeypatch.setattr(quota, "queued_items", queued_items)
    return counts


@pytest.fixture
def client(publisher):
    app = create_app(SETTINGS, publisher=publisher)
    app.dependency_overrides[get_caller] = lambda: Caller("alice", "hash")
    with TestClient(app) as client:
        yield client


def enrollment(i: int) -> dict:
    return {"device_id": f"d{i}", "public_key": "QUJD"}


def test_accepted_batch_publishes_one_event_per_item_then_the_job(client, publisher):
    response = client.post(
        "/batch/jobs",
        json={
            "job_type": "enrollment",
            "items": [enrollment(i) for i in range(3)],
            "metadata": {"k": "v"},
        },
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending" and body["total_items"] == 3
    *items, first = publisher.published  # the job last: never half visible
    assert isinstance(first.event, JobSubmitted) and first.topic == "t.jobs"
    assert first.event.user_id == "alice" and first.event.metadata == {"k": "v"}
    assert str(first.event.job_id) == body["batch_job_id"] == first.key
    # a small job without a priority: the interactive lane
    assert [m.topic for m in items] == ["t.items.enrollment.interactive"] * 3
    assert first.event.priority == "interactive"
    assert [m.key for m in items] == ["d0", "d1", "d2"]  # the handler's routing key
    events = [decode(m.encoded()) for m in items]
    assert all(isinstance(e, ItemSubmitted) for e in events)
    assert [e.item_index for e in events] == [0, 1, 2]  # type: ignore[union-attr]
    assert all(str(e.job_id) == body["batch_job_id"] for e in events)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"job_type": "teleport", "items": [{}]}, "unknown job_type"),
        ({"job_type": "query", "items": []}, "at least 1 item"),
        ({"job_type": "query"}, "items"),
        (
            {"job_type": "query", "items": [{"content_hash": "0" * 64}], "user_id": "bob"},
            "Extra inputs",
        ),
    ],
)
def test_client_mistakes_are_422_with_a_clear_message(client, publisher, body, needle):
    response = client.post("/batch/jobs", json=body)
    assert response.status_code == 422
    assert needle in response.text
    assert publisher.published == []


def test_malformed_json_is_422(client):
    response = client.post(
        "/batch/jobs",
        content=b'{"job_type": "query", "items": [',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "JSON" in response.text


def test_invalid_items_are_named_by_index(client, publisher):
    items = [
        {"content_hash": "0" * 64},
        {"content_hash": "xyz"},
        {"content_hash": "1" * 64},
        {"content_hash": "0" * 64, "device_id": "d"},
    ]
    response = client.post("/batch/jobs", json={"job_type": "query", "items": items})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_batch"
    assert [e["item_index"] for e in body["invalid_items"]] == [1, 3]
    assert "content_hash" in body["invalid_items"][0]["message"]
    assert "exactly one" in body["invalid_items"][1]["message"]
    assert publisher.published == []


def test_an_item_that_is_not_an_object_is_named_by_index(client, publisher):
    items = [[1, 2], {"content_hash": "0" * 64}, "x", {"content_hash": "1" * 64}]
    response = client.post("/batch/jobs", json={"job_type": "query", "items": items})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "2 of 4 items are invalid"
    assert [e["item_index"] for e in body["invalid_items"]] == [0, 2]
    assert body["invalid_items"][0]["message"].startswith("item: ")
    assert publisher.published == []


def test_the_same_request_spelt_otherwise_gets_the_same_job(client, publisher):
    headers = {"Idempotency-Key": "spelling", "Content-Type": "application/json"}
    first = client.post(
        "/batch/jobs",
        content=b'{"job_type":"query","items":[{"content_hash":"%s"}]}' % (b"a" * 64),
        headers=headers,
    )
    again = client.post(
        "/batch/jobs",
        content=b'{ "items": [ {"content_hash": "%s"} ],\n "job_type": "query" }' % (b"a" * 64),
        headers=headers,
    )
    assert first.status_code == again.status_code == 202
    assert first.json()["batch_job_id"] == again.json()["batch_job_id"]
    assert len(publisher.published) == 2  # one item and its job, once


def test_too_many_items_is_413(client):
    items = [{"content_hash": "0" * 64}] * 51
    response = client.post("/batch/jobs", json={"job_type": "query", "items": items})
    assert response.status_code == 413
    assert "limit of 50" in response.json()["detail"]


def test_an_unreachable_broker_is_503_not_500():
    app = create_app(SETTINGS, publisher=FakePublisher(fail=True))
    app.dependency_overrides[get_caller] = lambda: Caller("alice", "hash")
    with TestClient(app) as client:
        response = client.post(
            "/batch/jobs", json={"job_type": "query", "items": [{"content_hash": "0" * 64}]}
        )
    assert response.status_code == 503
    assert "try again" in response.json()["detail"]


def test_no_key_is_401():
    with TestClient(create_app(SETTINGS, publisher=FakePublisher())) as client:
        response = client.get("/batch/jobs/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_malformed_job_id_is_422(client):
    assert client.get("/batch/jobs/not-a-uuid").status_code == 422


def test_readyz_is_503_when_postgres_is_unreachable(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["postgres"].startswith("unreachable")


def test_the_same_idempotency_key_returns_the_same_job_and_publishes_nothing_new(client, publisher):
    body = {"job_type": "query", "items": [{"content_hash": "0" * 64}]}
    first = client.post("/batch/jobs", json=body, headers={"Idempotency-Key": "k1"})
    again = client.post("/batch/jobs", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert len(publisher.published) == 2  # one job event, one item event: once


def test_the_same_idempotency_key_with_another_body_is_409(client, publisher):
    client.post(
        "/batch/jobs",
        headers={"Idempotency-Key": "k2"},
        json={"job_type": "query", "items": [{"content_hash": "0" * 64}]},
    )
    other = client.post(
        "/batch/jobs",
        headers={"Idempotency-Key": "k2"},
        json={"job_type": "query", "items": [{"content_hash": "1" * 64}]},
    )
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict"
    assert len(publisher.published) == 2


def test_a_first_attempt_that_died_publishing_is_published_again(client, accepted_jobs):
    body = {"job_type": "query", "items": [{"content_hash": "0" * 64}]}
    failing = FakePublisher(fail=True)
    client.app.state.publisher = failing
    assert (
        client.post("/batch/jobs", json=body, headers={"Idempotency-Key": "k3"}).status_code == 503
    )
    (job,) = accepted_jobs.values()
    assert job.published_at is None
    working = FakePublisher()
    client.app.state.publisher = working
    retried = client.post("/batch/jobs", json=body, headers={"Idempotency-Key": "k3"})
    assert retried.status_code == 202
    assert retried.json()["batch_job_id"] == str(job.job_id)
    assert {str(decode(m.encoded()).job_id) for m in working.published} == {str(job.job_id)}
    assert job.published_at is not None


def ndjson(*lines: bytes) -> bytes:
    return b"\n".join(lines) + b"\n"


def test_an_ndjson_upload_is_validated_then_published_in_order(client, publisher):
    body = ndjson(*(b'{"device_id": "d%d", "public_key": "QUJD"}' % i for i in range(3)))
    response = client.post(
        "/batch/jobs",
        content=body,
        params={"job_type": "enrollment", "metadata": '{"src": "file"}'},
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["total_items"] == 3
    *items, first = publisher.published
    assert isinstance(first.event, JobSubmitted) and first.event.total_items == 3
    assert first.event.metadata == {"src": "file"}
    assert [m.key for m in items] == ["d0", "d1", "d2"]
    assert [decode(m.encoded()).item_index for m in items] == [0, 1, 2]  # type: ignore[union-attr]


@pytest.mark.parametrize("as_ndjson", [False, True])
def test_items_of_a_job_type_without_its_own_keys_are_keyed_by_job_and_index(
    client, publisher, as_ndjson
):
    items = [{"content_hash": f"{n:064X}"} for n in range(7)]
    if as_ndjson:
        response = client.post(
            "/batch/jobs?job_type=query",
            content=ndjson(b"", *(orjson.dumps(i) for i in items), b"  "),  # blank lines skipped
            headers={"Content-Type": "application/x-ndjson"},
        )
    else:
        response = client.post("/batch/jobs", json={"job_type": "query", "items": items})
    assert response.status_code == 202, response.text
    job = response.json()["batch_job_id"]
    *published, _ = publisher.published
    assert [m.key for m in published] == [f"{job}:{n}" for n in range(7)]
    events = [decode(m.encoded()) for m in published]
    assert [e.item_index for e in events] == list(range(7))  # type: ignore[union-attr]
    # the normalised input: the content hash lower-cased, absent keys left out
    assert [e.input for e in events] == [  # type: ignore[union-attr]
        {"content_hash": f"{n:064x}"} for n in range(7)
    ]


def test_a_bad_line_anywhere_publishes_nothing_and_is_named(client, publisher):
    good = b'{"content_hash": "%s"}' % (b"0" * 64)
    body = ndjson(good, good, b'{"content_hash": "short"}', b"not json", good)
    response = client.post(
        "/batch/jobs?job_type=query", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 422
    assert [e["item_index"] for e in response.json()["invalid_items"]] == [2, 3]
    assert publisher.published == []


@pytest.mark.parametrize(
    ("params", "body", "status", "needle"),
    [
        ({}, b'{"content_hash": "x"}\n', 422, "job type"),
        ({"job_type": "query"}, b"\n\n", 422, "no items"),
        ({"job_type": "query", "metadata": "[1]"}, b"{}\n", 422, "metadata"),
        ({"job_type": "query"}, b'{"content_hash": "' + b"a" * 70_000 + b'"}\n', 413, "bytes"),
    ],
)
def test_ndjson_mistakes_are_clear(client, publisher, params, body, status, needle):
    response = client.post(
        "/batch/jobs", content=body, params=params, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == status
    assert needle in response.json()["detail"]
    assert publisher.published == []


def test_an_unknown_media_type_is_415(client):
    response = client.post(
        "/batch/jobs",
        content=b"job_type=query",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415


def test_a_json_body_over_the_limit_is_413(publisher):
    app = create_app(SETTINGS.model_copy(update={"api_max_body_bytes": 2048}), publisher=publisher)
    app.dependency_overrides[get_caller] = lambda: Caller("alice", "hash")
    items = [{"content_hash": "0" * 64}] * 40
    with TestClient(app) as small:
        response = small.post("/batch/jobs", json={"job_type": "query", "items": items})
    assert response.status_code == 413
    assert publisher.published == []


@pytest.mark.parametrize(
    ("priority", "items", "cap", "lane"),
    [
        (None, 3, None, "interactive"),  # small: interactive by default
        ("bulk", 3, None, "bulk"),  # unless it asks for bulk
        ("interactive", 3, None, "interactive"),
        (None, 3, 0, "bulk"),  # a key an operator kept out of the interactive lane
        (None, 11, None, "bulk"),  # past API_INTERACTIVE_DEFAULT_MAX_ITEMS: bulk
        ("interactive", 11, None, "interactive"),  # within API_INTERACTIVE_MAX_ITEMS
        ("interactive", 11, 15, "interactive"),  # within the key's own cap
    ],
)
def test_a_jobs_lane_follows_its_priority_its_size_and_the_keys_cap(
    client, publisher, priority, items, cap, lane
):
    client.app.dependency_overrides[get_caller] = lambda: Caller("alice", "hash", cap)
    body = {"job_type": "enrollment", "items": [enrollment(i) for i in range(items)]}
    if priority:
        body["priority"] = priority
    assert client.post("/batch/jobs", json=body).status_code == 202
    *published, job = publisher.published
    assert job.event.priority == lane
    assert {m.topic for m in published} == {
        f"t.items.enrollment{'.interactive' * (lane == 'interactive')}"
    }


def test_an_interactive_job_over_the_keys_cap_is_403_saying_the_cap(client, publisher):
    client.app.dependency_overrides[get_caller] = lambda: Caller("alice", "hash", 2)
    body = {
        "job_type": "enrollment",
        "items": [enrollment(i) for i in range(3)],
        "priority": "interactive",
    }
    response = client.post("/batch/jobs", json=body)
    assert response.status_code == 403
    assert response.json()["error"] == "interactive_not_allowed"
    assert response.json()["interactive_max_items"] == 2
    assert publisher.published == []


def test_a_job_past_the_users_queue_quota_is_429_with_the_usage(client, publisher, queued):
    client.app.state.settings = SETTINGS.model_copy(update={"api_max_queued_items_per_user": 10})
    queued["alice"] = 8
    body = {"job_type": "enrollment", "items": [enrollment(i) for i in range(3)]}
    response = client.post("/batch/jobs", json=body)
    assert response.status_code == 429 and response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "queue_full"
    assert (response.json()["queued_items"], response.json()["max_queued_items"]) == (8, 10)
    assert publisher.published == []
    queued["alice"] = 7  # within it now: 7 + 3
    assert client.post("/batch/jobs", json=body).status_code == 202


def test_an_upload_to_a_full_queue_is_refused_before_it_is_read(client, publisher, queued):
    client.app.state.settings = SETTINGS.model_copy(update={"api_max_queued_items_per_user": 10})
    queued["alice"] = 10
    sent: list[bytes] = []

    def body():  # type: ignore[no-untyped-def]
        for i in range(3):
            sent.append(b"x")
            yield orjson.dumps(enrollment(i)) + b"\n"

    response = client.post(
        "/batch/jobs?job_type=enrollment",
        content=body(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 429 and response.json()["error"] == "queue_full"
    assert len(sent) < 3 and publisher.published == []


@pytest.mark.parametrize(
    "priority",
    ["inter\u0000active", "\ud800", 2**63, {"a": [[[]]]}, "x" * (2 << 20), "INTERACTIVE"],
    ids=["nul", "lone-surrogate", "past-2^63", "nested", "2MB", "unknown"],
)
def test_a_priority_that_is_not_a_lane_is_422_and_publishes_nothing(client, publisher, priority):
    body = {"job_type": "enrollment", "items": [enrollment(0)], "priority": priority}
    raw = json.dumps(body, ensure_ascii=True).encode()
    response = client.post("/batch/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code in (413, 422), response.text[:200]
    assert publisher.published == []
    value = quote(str(priority)[:1000].encode("utf-8", "surrogatepass"))  # (bytes as sent)
    ndjson = client.post(
        f"/batch/jobs?job_type=enrollment&priority={value}",
        content=orjson.dumps(enrollment(0)) + b"\n",
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert ndjson.status_code == 422 and publisher.published == []
