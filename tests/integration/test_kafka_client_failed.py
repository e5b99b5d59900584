"""A Kafka consumer that fails under a projector, a worker or the notifier (aiokafka ends a
consumer on an unexpected error of its group coordination, as when a broker is killed under
it: "Unexpected error during coordination RuntimeError('unable to perform operation on
<TCPTransport closed=True ...>')") ends that session, not the process: a new session with new
clients resumes, and nothing is lost or repeated. Real Kafka and PostgreSQL; the process runs in a
forked child of the test, its consumer's ``getmany`` failing once mid-way, as aiokafka's does."""

import asyncio
import multiprocessing
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


def fails_once(group_id: str, failed: Any) -> Callable[..., Coroutine[Any, Any, Any]]:
    """An ``AIOKafkaConsumer.getmany`` that fails once for the consumers of one group, after
    some records came (``failed``: a multiprocessing Event, set when it failed)."""
    real = AIOKafkaConsumer.getmany
    records_seen = 0

    async def getmany(consumer: AIOKafkaConsumer, *args: Any, **kwargs: Any) -> Any:
        nonlocal records_seen
        ours = consumer._group_id == group_id
        if ours and records_seen > 0 and not failed.is_set():
            failed.set()
            raise COORDINATION_FAILED
        batch = await real(consumer, *args, **kwargs)
        if ours:
            records_seen += sum(len(records) for records in batch.values())
        return batch

    return getmany


class Forked:
    """A process's main coroutine (``run``, stopped by SIGTERM as the real process is) in a
    forked child of the test, in which ``getmany`` fails once for ``group_id``'s consumers.
    (A child of its own: nothing it does reaches the test's interpreter.)"""

    def __init__(self, group_id: str, run: Callable[[], Coroutine[Any, Any, None]]):
        context = multiprocessing.get_context("fork")
        self.failed = context.Event()
        self.process = context.Process(target=self._main, args=(group_id, run), daemon=True)
        self.process.start()

    def _main(self, group_id: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        AIOKafkaConsumer.getmany = fails_once(group_id, self.failed)  # type: ignore[method-assign]
        asyncio.run(run())

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> int | None:
        """SIGTERM, as a supervisor stops it; its exit status (0: it stopped cleanly)."""
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(60)
        return self.process.exitcode


@pytest.fixture
def process_env(stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in stack_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("METRICS_PORT", raising=False)
    yield


def _assert_completed_exactly(
    engine: Any, job_id: uuid.UUID, process: Forked, success: int, failed: int
) -> None:
    def completed() -> dict[str, Any] | None:
        assert process.alive(), f"the process ended (exit status {process.process.exitcode})"
        job = job_row(engine, job_id)
        return job if job is not None and job["status"] == "completed" else None

    job = wait_for(completed, 120, "the job completed")
    assert (job["processed_items"], job["success_items"], job["failed_items"]) == (
        ITEMS,
        success,
        failed,
    ), job


def test_the_projector_starts_a_new_session_when_its_consumer_fails(
    kafka_settings, engine, process_env
):
    settings = ProjectorSettings()
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
    projector = Forked(settings.group_id(), lambda: projections.app.run_projector(settings))
    try:
        failed = sum(1 for i in range(ITEMS) if i % 5 == 3 or i % 7 == 6)
        _assert_completed_exactly(engine, job_id, projector, ITEMS - failed, failed)
        assert projector.failed.is_set(), "the consumer was never made to fail"
    finally:
        assert projector.stop() == 0


def test_a_worker_starts_a_new_session_when_its_consumer_fails(
    kafka_settings, engine, process_env, processes
):
    settings = WorkerSettings()
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
    worker = Forked(settings.group_id("query"), lambda: consumers.app.run_worker(settings, "query"))
    try:
        _assert_completed_exactly(engine, job_id, worker, ITEMS, 0)
        assert worker.failed.is_set(), "the consumer was never made to fail"
    finally:
        assert worker.stop() == 0


def test_the_notifier_starts_a_new_session_when_its_consumer_fails(
    api_settings, keys, process_env, processes, monkeypatch
):
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.2")
    monkeypatch.setenv("PROJECTOR_ANNOUNCE_SWEEP_S", "1")
    settings = NotifierSettings()
    processes.start("projector", PROJECTOR_ANNOUNCE_SWEEP_S="1")
    processes.start("worker", "--job-type", "query")
    receiver = Receiver().start()
    notifier = Forked(settings.group_id(), lambda: notifications.app.run_notifier(settings))
    api_settings = api_settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.2"})
    try:
        with TestClient(create_app(api_settings)) as api:

            def delivered(path: str) -> Any:
                assert notifier.alive(), f"the notifier ended ({notifier.process.exitcode})"
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
            wait_for(notifier.failed.is_set, 30, "the consumer failed")
            submit(second)  # read by the notifier's next session
            wait_for(lambda: delivered(second), 90, "the second job's webhook")
            assert len(receiver.requests(first)) == len(receiver.requests(second)) == 1
    finally:
        receiver.stop()
        assert notifier.stop() == 0
