"""A Kafka consumer that fails under a projector, a worker or the notifier (aiokafka ends a
consumer on an unexpected error of its group coordination, as when a broker is killed under
it: "Unexpected error during coordination RuntimeError('unable to perform operation on
<TCPTransport closed=True ...>')") ends that session, not the process: a new session with new
clients resumes, and nothing is lost or repeated. Real Kafka and PostgreSQL; the process runs
in a thread of the test, its consumer's ``getmany`` failing once mid-way, as aiokafka's does."""

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from fastapi.testclient import TestClient

import consumers.app
import notifications.app
import projections.app
from consumers.settings import WorkerSettings
from events.codec import encode
from ingest_api.app import create_app
from notifications.settings import NotifierSettings
from projections.settings import ProjectorSettings
from tests import factories as f
from tests.integration.conftest import job_row, publish_many, wait_for
from tests.support.receiver import Receiver

ITEMS = 2_000
COORDINATION_FAILED = KafkaError(
    "Unexpected error during coordination RuntimeError('unable to perform operation on"
    " <TCPTransport closed=True reading=False>; the handler is closed')"
)


class FailsOnce:
    """``AIOKafkaConsumer.getmany`` of the consumers of one group, failing once, after some
    records came."""

    def __init__(self, group_id: str):
        self.group_id = group_id
        self.records_seen = 0
        self.failed = False
        self.real = AIOKafkaConsumer.getmany

    async def __call__(self, consumer: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> Any:
        if consumer._group_id == self.group_id and self.records_seen > 0 and not self.failed:
            self.failed = True
            raise COORDINATION_FAILED
        batch = await self.real(consumer, *args, **kwargs)
        if consumer._group_id == self.group_id:
            self.records_seen += sum(len(records) for records in batch.values())
        return batch

    def method(self) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def getmany(consumer: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> Any:
            return await self(consumer, *args, **kwargs)

        return getmany


class InThread:
    """Runs ``run(stop)`` on an event loop of its own thread until ``stop_and_join``."""

    def __init__(self, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]):
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, args=(run,), daemon=True)
        self.thread.start()

    def _main(self, run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
        try:
            self.loop.run_until_complete(run(self.stop))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.loop.close()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop_and_join(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(60)


@pytest.fixture
def process_env(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in stack_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("METRICS_PORT", raising=False)
    # what a process does to its whole interpreter, left out of the test's
    monkeypatch.setattr(projections.app.garbage_collector, "settle_after_start_up", lambda: None)
    monkeypatch.setattr(projections.app, "favour_the_writer", lambda: None)
    yield


def _assert_completed_exactly(
    engine: Any, job_id: uuid.UUID, process: InThread, success: int, failed: int
) -> None:
    def completed() -> dict[str, Any] | None:
        assert process.alive(), f"the process ended: {process.error!r}"
        job = job_row(engine, job_id)
        return job if job is not None and job["status"] == "completed" else None

    job = wait_for(completed, 120, "the job completed")
    assert (job["processed_items"], job["success_items"], job["failed_items"]) == (
        ITEMS,
        success,
        failed,
    ), job


def test_the_projector_starts_a_new_session_when_its_consumer_fails(
    kafka_settings, engine, process_env, monkeypatch
):
    settings = ProjectorSettings()
    getmany = FailsOnce(settings.group_id())
    monkeypatch.setattr(AIOKafkaConsumer, "getmany", getmany.method())
    topics = kafka_settings.topics
    job_id, events = f.mixed_job(ITEMS)
    routes = {"JobSubmitted": topics.jobs, "ItemSubmitted": topics.items("query")}
    asyncio.run(
        publish_many(
            kafka_settings,
            [
                (routes.get(e.event_type, topics.outcomes), str(job_id).encode(), encode(e))
                for e in events
            ],
        )
    )
    projector = InThread(lambda stop: projections.app.run_projector(settings, stop))
    try:
        failed = sum(1 for i in range(ITEMS) if i % 5 == 3 or i % 7 == 6)
        _assert_completed_exactly(engine, job_id, projector, ITEMS - failed, failed)
        assert getmany.failed, "the consumer was never made to fail"
    finally:
        projector.stop_and_join()
    assert projector.error is None, projector.error


def test_a_worker_starts_a_new_session_when_its_consumer_fails(
    kafka_settings, engine, process_env, processes, monkeypatch
):
    settings = WorkerSettings()
    getmany = FailsOnce(settings.group_id("query"))
    monkeypatch.setattr(AIOKafkaConsumer, "getmany", getmany.method())
    monkeypatch.setattr(consumers.app.garbage_collector, "settle_after_start_up", lambda: None)
    processes.start("projector")  # a process of its own: its consumer is aiokafka's own
    topics = kafka_settings.topics
    job_id = uuid.uuid4()
    key = str(job_id).encode()
    asyncio.run(
        publish_many(
            kafka_settings,
            [(topics.jobs, key, encode(f.job_submitted(job_id, ITEMS)))]
            + [
                (
                    topics.items("query"),
                    f"{job_id}:{i}".encode(),
                    encode(f.item_submitted(job_id, i)),
                )
                for i in range(ITEMS)
            ],
        )
    )
    worker = InThread(lambda stop: consumers.app.run_worker(settings, "query", stop))
    try:
        _assert_completed_exactly(engine, job_id, worker, ITEMS, 0)
        assert getmany.failed, "the consumer was never made to fail"
    finally:
        worker.stop_and_join()
    assert worker.error is None, worker.error


def test_the_notifier_starts_a_new_session_when_its_consumer_fails(
    api_settings, keys, process_env, processes, monkeypatch
):
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.2")
    monkeypatch.setenv("PROJECTOR_ANNOUNCE_SWEEP_S", "1")
    settings = NotifierSettings()
    getmany = FailsOnce(settings.group_id())
    monkeypatch.setattr(AIOKafkaConsumer, "getmany", getmany.method())
    processes.start("projector", PROJECTOR_ANNOUNCE_SWEEP_S="1")
    processes.start("worker", "--job-type", "query")
    receiver = Receiver().start()
    notifier = InThread(lambda stop: notifications.app.run_notifier(settings, stop))
    api_settings = api_settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.2"})
    try:
        with TestClient(create_app(api_settings)) as api:

            def delivered(path: str) -> Any:
                assert notifier.alive(), f"the notifier ended: {notifier.error!r}"
                return receiver.requests(path)

            def submit(path: str) -> None:
                body = {
                    "job_type": "query",
                    "items": [{"content_hash": f"{i:064x}"} for i in range(3)],
                    "callback_url": receiver.url(path),
                }
                response = api.post("/batch/jobs", headers=keys["alice"], json=body)
                assert response.status_code == 202, response.text

            first, second = f"/before/{uuid.uuid4().hex}", f"/after/{uuid.uuid4().hex}"
            submit(first)
            wait_for(lambda: delivered(first), 90, "the first job's webhook")
            wait_for(lambda: getmany.failed or not notifier.alive(), 30, "the consumer failed")
            submit(second)  # read by the notifier's next session
            wait_for(lambda: delivered(second), 90, "the second job's webhook")
            assert len(receiver.requests(first)) == len(receiver.requests(second)) == 1
    finally:
        notifier.stop_and_join()
        receiver.stop()
    assert notifier.error is None, notifier.error
