"""Finished jobs notify: JobFinished on the notifications topic, and signed webhooks with
retries to a real HTTP receiver on this machine, through real worker, projector and
notifier processes on real Kafka and PostgreSQL."""

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from events.codec import decode_notification
from ingest_api.app import create_app
from streaming.clients import make_consumer, topic_partitions
from tests.integration.conftest import Processes, wait_for
from tests.support.receiver import Answer, Receiver

NOTIFIER_ENV = {
    "WEBHOOK_ALLOWED_HOSTS": "127.0.0.2,127.0.0.3",
    "WEBHOOK_MAX_PER_HOST": "4",
    "WEBHOOK_TIMEOUT_S": "3",
    "WEBHOOK_RETRY_BASE_S": "0.5",
    "WEBHOOK_RETRY_MAX_DELAY_S": "4",
    "PROJECTOR_ANNOUNCE_SWEEP_S": "1",
}


class Stack:
    def __init__(self, processes: Processes):
        self.processes = processes
        self.notifier = processes.start("notifier", **NOTIFIER_ENV)
        self.projector = processes.start("projector", **NOTIFIER_ENV)
        processes.start("worker", "--job-type", "query")

    def restart_notifier(self) -> None:
        self.notifier = self.processes.start("notifier", **NOTIFIER_ENV)


@pytest.fixture(scope="module")
def stack(stack_env: dict[str, str]) -> Iterator[Stack]:
    processes = Processes(stack_env)
    yield Stack(processes)
    processes.stop_all()


@pytest.fixture(scope="module")
def hooks_api(api_settings) -> Iterator[TestClient]:
    settings = api_settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.2,127.0.0.3"})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def submit(api: TestClient, headers: dict[str, str], n: int, callback_url: str | None) -> str:
    body: dict[str, Any] = {
        "job_type": "query",
        "items": [{"content_hash": f"{i:064x}"} for i in range(n)],
    }
    if callback_url is not None:
        body["callback_url"] = callback_url
    response = api.post("/batch/jobs", headers=headers, json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["batch_job_id"])


def secret_of(api: TestClient, headers: dict[str, str]) -> str:
    response = api.get("/batch/webhook", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["secret"])


def deliveries(api: TestClient, headers: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/batch/jobs/{job_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["deliveries"])


def test_a_finished_job_is_delivered_once_and_its_signature_verifies(
    stack, hooks_api, keys, receiver
):
    alice = keys["alice"]
    path = f"/hook/{uuid.uuid4().hex}"
    job_id = submit(hooks_api, alice, 20, receiver.url(path))
    got = wait_for(lambda: receiver.requests(path), 90, "the webhook")
    time.sleep(3)  # (a second delivery would come within the sweeps)
    assert len(receiver.requests(path)) == 1
    request = got[0]
    # an independent implementation of Standard Webhooks verifies it
    payload = Webhook(secret_of(hooks_api, alice)).verify(request.body, request.headers)
    assert payload["event_type"] == "JobFinished"
    assert payload["job_id"] == job_id and payload["status"] == "completed"
    assert payload["total_items"] == payload["success_items"] == 20
    assert payload["success_rate"] == 1.0
    assert payload["links"]["job"].endswith(f"/batch/jobs/{job_id}")
    assert request.headers["webhook-id"] == payload["event_id"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    [delivery] = deliveries(hooks_api, alice, job_id)
    assert delivery["status"] == "delivered"
    assert delivery["webhook_id"] == payload["event_id"]
    assert [a["status_code"] for a in delivery["attempt_log"]] == [200]
    # another user sees nothing of it
    assert hooks_api.get(f"/batch/jobs/{job_id}/deliveries", headers=keys["bob"]).status_code == 404


def test_during_a_rotation_both_secrets_sign(stack, hooks_api, keys, receiver):
    bob = keys["bob"]
    old = secret_of(hooks_api, bob)
    rotated = hooks_api.post("/batch/webhook/rotate-secret", headers=bob)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old and rotated.json()["previous_secret_valid_until"]
    path = f"/hook/{uuid.uuid4().hex}"
    submit(hooks_api, bob, 2, receiver.url(path))
    [request] = wait_for(lambda: receiver.requests(path), 90, "the webhook")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):  # a receiver with either one accepts it
        Webhook(secret).verify(request.body, request.headers)


def test_a_plain_consumer_reads_job_finished_and_it_validates_against_the_schema(
    stack, hooks_api, keys, receiver, kafka_settings, tmp_path
):
    job_id = submit(hooks_api, keys["alice"], 5, None)
    subprocess.run(
        [sys.executable, "-m", "batchctl", "schema", "export", str(tmp_path)], check=True
    )
    schema = json.loads((tmp_path / "events" / "JobFinished.json").read_text())
    validator = jsonschema_rs.validator_for(schema)

    async def read() -> dict[str, Any]:
        consumer = make_consumer(kafka_settings, kafka_settings.topics.notifications, group_id=None)
        await consumer.start()
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        event = json.loads(record.value)
                        if event["job_id"] == job_id:
                            assert record.key == job_id.encode()
                            return event
        finally:
            await consumer.stop()
        raise AssertionError("no JobFinished for the job")

    event = asyncio.run(read())
    validator.validate(event)  # raises if not
    assert event["status"] == "completed" and event["total_items"] == 5
    assert decode_notification(json.dumps(event).encode()).job_id == uuid.UUID(job_id)


def test_500_twice_then_200_is_three_attempts_and_one_success(stack, hooks_api, keys, receiver):
    alice = keys["alice"]
    path = f"/hook/{uuid.uuid4().hex}"
    receiver.script(path, [Answer(500), Answer(503, {"retry-after": "1"}), Answer(200)])
    job_id = submit(hooks_api, alice, 3, receiver.url(path))
    wait_for(lambda: len(receiver.requests(path)) >= 3, 90, "three attempts")

    def delivered() -> dict[str, Any] | None:
        found = deliveries(hooks_api, alice, job_id)
        return found[0] if found and found[0]["status"] == "delivered" else None

    delivery = wait_for(delivered, 30, "the delivery recorded")
    log = delivery["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 503, 200]
    assert [a["outcome"] for a in log] == ["retry", "retry", "delivered"]
    assert all(a["next_attempt_at"] for a in log[:2]) and delivery["attempts"] == 3
    # the Retry-After of the second answer was honoured (1 s, not the backoff's less)
    second, third = receiver.requests(path)[1:3]
    assert third.at - second.at >= 0.9
    ids = {r.headers["webhook-id"] for r in receiver.requests(path)}
    assert len(ids) == 1  # the same webhook-id on every attempt
    shown = subprocess.run(
        [sys.executable, "-m", "batchctl", "deliveries", job_id],
        env=stack.processes.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown.count("500") >= 1 and "503" in shown and "delivered" in shown


def test_a_410_is_not_retried(stack, hooks_api, keys, receiver):
    alice = keys["alice"]
    path = f"/hook/{uuid.uuid4().hex}"
    receiver.script(path, [Answer(410)])
    job_id = submit(hooks_api, alice, 2, receiver.url(path))
    wait_for(lambda: receiver.requests(path), 90, "the attempt")

    def failed() -> dict[str, Any] | None:
        found = deliveries(hooks_api, alice, job_id)
        return found[0] if found and found[0]["status"] == "failed" else None

    delivery = wait_for(failed, 30, "the delivery failed")
    time.sleep(3)
    assert len(receiver.requests(path)) == 1
    assert [a["status_code"] for a in delivery["attempt_log"]] == [410]
    assert delivery["next_attempt_at"] is None and "410" in delivery["last_error"]
    # redelivery sends it again, with the same webhook-id
    response = hooks_api.post(f"/batch/jobs/{job_id}/deliveries/redeliver", headers=alice)
    assert response.status_code == 202, response.text
    wait_for(lambda: len(receiver.requests(path)) == 2, 30, "the redelivery")
    first, second = receiver.requests(path)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_a_receiver_down_for_30_seconds_gets_it_afterwards(stack, hooks_api, keys):
    alice = keys["alice"]
    down = Receiver().start()
    port = down.port
    down.stop()
    job_id = submit(hooks_api, alice, 2, down.url("/late"))
    started = time.monotonic()

    def failed_attempts() -> int:
        found = deliveries(hooks_api, alice, job_id)
        return found[0]["attempts"] if found else 0

    wait_for(lambda: failed_attempts() >= 2, 60, "attempts while it is down")
    time.sleep(max(0.0, 30 - (time.monotonic() - started)))
    back = Receiver(port=port).start()
    try:
        wait_for(lambda: back.requests("/late"), 30, "the webhook after the receiver is back")
        [delivery] = deliveries(hooks_api, alice, job_id)
        wait_for(
            lambda: deliveries(hooks_api, alice, job_id)[0]["status"] == "delivered", 10, "record"
        )
        errors = [a["error"] for a in delivery["attempt_log"] if a["outcome"] == "retry"]
        assert errors and all("connect" in e.lower() for e in errors), errors
    finally:
        back.stop()


def test_the_notifier_killed_mid_delivery_delivers_after_restart(stack, hooks_api, keys, receiver):
    alice = keys["alice"]
    path = f"/hook/{uuid.uuid4().hex}"
    receiver.script(path, [Answer(200, delay_s=20)])  # holds the first attempt
    job_id = submit(hooks_api, alice, 2, receiver.url(path))
    wait_for(lambda: receiver.requests(path), 90, "the first attempt")
    stack.notifier.send_signal(signal.SIGKILL)
    stack.notifier.wait(10)
    stack.restart_notifier()
    wait_for(lambda: len(receiver.requests(path)) >= 2, 60, "the attempt after the restart")
    first, second = receiver.requests(path)[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    wait_for(
        lambda: deliveries(hooks_api, alice, job_id)[0]["status"] == "delivered", 30, "delivered"
    )


def test_a_cancelled_job_notifies_cancelled(stack, hooks_api, keys, receiver):
    alice = keys["alice"]
    path = f"/hook/{uuid.uuid4().hex}"
    body = {
        "job_type": "enrollment",
        "items": [
            {"device_id": f"d-{i}", "public_key": "A" * 43 + "=", "platform": "ios"}
            for i in range(50)
        ],
        "callback_url": receiver.url(path),
    }
    response = hooks_api.post("/batch/jobs", headers=alice, json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["batch_job_id"]
    wait_for(
        lambda: hooks_api.get(f"/batch/jobs/{job_id}", headers=alice).status_code == 200,
        30,
        "the job",
    )
    cancel = hooks_api.post(f"/batch/jobs/{job_id}/cancel", headers=alice)
    assert cancel.status_code == 202, cancel.text
    stack.processes.start("worker", "--job-type", "enrollment")  # skips the cancelled items
    [request] = wait_for(lambda: receiver.requests(path), 90, "the webhook")
    payload = json.loads(request.body)
    assert payload["status"] == "cancelled"
    assert payload["cancelled_items"] == 50 and payload["success_items"] == 0


def test_a_slow_receiver_holds_only_its_own_slots(stack, hooks_api, keys):
    """Eight deliveries to a receiver that takes 2.5 s each: at most four at once go to it,
    and a delivery to another host, due after them, is not kept waiting behind them."""
    alice = keys["alice"]
    slow, fast = Receiver("127.0.0.2").start(), Receiver("127.0.0.3").start()
    try:
        for n in range(8):
            slow.script(f"/slow/{n}", [Answer(200, delay_s=2.5)])
            submit(hooks_api, alice, 1, slow.url(f"/slow/{n}"))
        wait_for(lambda: slow.in_flight >= 4, 90, "the slow receiver busy")
        submit(hooks_api, alice, 1, fast.url("/fast"))
        [quick] = wait_for(lambda: fast.requests("/fast"), 30, "the other host's webhook")
        wait_for(lambda: len(slow.received) == 8 and slow.in_flight == 0, 60, "the slow ones")
        assert slow.most_in_flight == 4
        assert quick.at < max(r.at for r in slow.received)
    finally:
        slow.stop()
        fast.stop()


def announced(engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT job_id, published_at FROM job_notifications"))
        return {str(r.job_id): r.published_at for r in rows}


def notifications_on_the_topic(kafka_settings) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        consumer = make_consumer(kafka_settings, group_id=None)
        await consumer.start()
        try:
            topic = kafka_settings.topics.notifications
            partitions = await topic_partitions(consumer, lambda t: t == topic)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            found = []
            ends = await consumer.end_offsets(partitions)

            async def behind() -> bool:
                return any([await consumer.position(tp) < end for tp, end in ends.items()])

            while await behind():
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        e = json.loads(r.value)
                        found.append((e["job_id"], e["event_id"]))
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_a_replay_sends_nothing(stack, hooks_api, keys, receiver, engine, kafka_settings):
    alice = keys["alice"]
    path = f"/hook/{uuid.uuid4().hex}"
    job_id = submit(hooks_api, alice, 10, receiver.url(path))
    wait_for(lambda: receiver.requests(path), 90, "the webhook")
    before = announced(engine)
    on_topic = notifications_on_the_topic(kafka_settings)
    received = len(receiver.received)
    env = stack.processes.env
    # a shadow replay beside the running projector, then an in-place one without it
    subprocess.run([sys.executable, "-m", "batchctl", "replay"], env=env, check=True)
    stack.projector.terminate()
    stack.projector.wait(30)
    subprocess.run([sys.executable, "-m", "batchctl", "replay", "--in-place"], env=env, check=True)
    stack.projector = stack.processes.start("projector", **NOTIFIER_ENV)
    time.sleep(6)  # several announcement sweeps and dispatch polls
    after = announced(engine)
    assert {j: after[j] for j in before} == before  # nothing announced again
    assert len(receiver.received) == received
    again = notifications_on_the_topic(kafka_settings)[len(on_topic) :]
    assert not [j for j, _ in again if j in before], again
    assert hooks_api.get(f"/batch/jobs/{job_id}", headers=alice).json()["status"] == "completed"


HOSTILE_URLS = [
    "http://127.0.0.1:8000/hook",  # http to a host not allowed
    "https://127.0.0.1/hook",  # loopback
    "https://[::1]/hook",
    "https://10.1.2.3/hook",  # private
    "https://192.168.0.10/hook",
    "https://169.254.169.254/latest/meta-data/",  # cloud metadata
    "https://[::ffff:169.254.169.254]/",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://localhost:8443/hook",
    "https://0.0.0.0/hook",
    "ftp://example.com/hook",
    "https://user:password@example.com/hook",
    "https://example.com:99999/hook",
    "https://exa mple.com/hook",
    "https://example.com/\x00hook",
    "https://" + "a" * 3000 + ".com/",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_a_callback_url_that_can_never_be_called_is_refused_at_submission(hooks_api, keys, url):
    body = {"job_type": "query", "items": [{"content_hash": "0" * 64}], "callback_url": url}
    response = hooks_api.post("/batch/jobs", headers=keys["alice"], json=body)
    assert response.status_code == 422, response.text
    upload = hooks_api.post(
        "/batch/jobs",
        params={"job_type": "query", "callback_url": url},
        headers={**keys["alice"], "content-type": "application/x-ndjson"},
        content=b'{"content_hash": "' + b"0" * 64 + b'"}\n',
    )
    assert upload.status_code == 422, upload.text
    default = hooks_api.put("/batch/webhook", headers=keys["alice"], json={"url": url})
    assert default.status_code == 422, default.text


def test_a_name_resolving_to_loopback_and_a_redirect_to_loopback_are_refused_at_delivery(
    stack, hooks_api, keys, receiver
):
    alice = keys["alice"]
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 443)}
    assert addresses and all(a.startswith("127.") or a == "::1" for a in addresses), addresses
    looping = submit(hooks_api, alice, 1, f"https://{name}:9/hook")  # accepted: a name
    trap = Receiver(host="127.0.0.1").start()  # what the redirect points at
    try:
        path = f"/hook/{uuid.uuid4().hex}"
        receiver.script(path, [Answer(302, {"location": trap.url("/stolen")})])
        redirected = submit(hooks_api, alice, 1, receiver.url(path))

        def failed(job_id: str) -> dict[str, Any] | None:
            found = deliveries(hooks_api, alice, job_id)
            return found[0] if found and found[0]["status"] == "failed" else None

        refused = wait_for(lambda: failed(looping), 90, "the loopback name refused")
        assert "refused" in refused["last_error"] and "loopback" in refused["last_error"]
        assert refused["attempt_log"][0]["status_code"] is None
        moved = wait_for(lambda: failed(redirected), 90, "the redirect not followed")
        assert "redirect not followed" in moved["last_error"]
        assert [a["status_code"] for a in moved["attempt_log"]] == [302]
        time.sleep(2)
        assert trap.received == []
    finally:
        trap.stop()


def test_a_forged_job_finished_is_dead_lettered_not_delivered(
    stack, hooks_api, keys, receiver, kafka_settings, engine
):
    """A JobFinished published straight to the topic for a job that has not finished (or
    does not exist), or that breaks the contract, sends nothing."""
    from tests.integration.conftest import publish

    alice = keys["alice"]
    path = f"/hook/{uuid.uuid4().hex}"
    hooks_api.put("/batch/webhook", headers=alice, json={"url": receiver.url(path)})
    try:
        fake = {
            "event_id": str(uuid.uuid4()),
            "event_type": "JobFinished",
            "schema_version": 1,
            "occurred_at": "2026-01-01T00:00:00Z",
            "job_id": str(uuid.uuid4()),
            "user_id": "alice",
            "job_type": "query",
            "status": "completed",
            "total_items": 1,
            "success_items": 1,
            "failed_items": 0,
            "cancelled_items": 0,
            "success_rate": 1.0,
            "created_at": None,
            "started_at": None,
            "finished_at": "2026-01-01T00:00:00Z",
            "top_errors": [],
            "links": {"job": "x", "items": "y"},
        }
        topic = kafka_settings.topics.notifications
        asyncio.run(
            publish(
                kafka_settings,
                [
                    (topic, b"k", json.dumps(fake).encode()),
                    (topic, b"k", b"\x00not json"),
                    (topic, b"k", json.dumps({**fake, "status": "exploded"}).encode()),
                ],
            )
        )
        time.sleep(5)
        assert receiver.requests(path) == []
    finally:
        hooks_api.delete("/batch/webhook", headers=alice)


def test_the_callback_url_is_shown_with_the_job(stack, hooks_api, keys, receiver):
    url = receiver.url("/shown")
    job_id = submit(hooks_api, keys["alice"], 1, url)
    shown = wait_for(
        lambda: (
            hooks_api.get(f"/batch/jobs/{job_id}", headers=keys["alice"]).json().get("callback_url")
        ),
        60,
        "the job folded",
    )
    assert shown == url
