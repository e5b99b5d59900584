"""Real Kafka and PostgreSQL for the integration tests. Each test session gets its own
database (migrated with Alembic) and its own topic prefix, so it never touches the data of a
running stack or of another session."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key
from ingest_api.app import create_app
from ingest_api.settings import ApiSettings
from jobtypes.registry import job_types
from migrations.scratch import create_database, drop_database
from projections.writer import ProjectionWriter
from storage.engine import make_engine, normalise_url
from streaming.clients import make_producer
from streaming.settings import KafkaSettings
from streaming.topics_admin import create_topics, delete_prefixed_topics
from tests.integration import services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def kafka_servers() -> Iterator[str]:
    with services.kafka_bootstrap_servers() as servers:
        yield servers


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    with services.postgres_url() as url:
        yield normalise_url(url)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    url = create_database(server_url, "batch_test_")
    yield url
    drop_database(server_url, url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[ProjectionWriter]:
    """A projection writer of a projection of its own, on its own connection."""
    raw = engine.raw_connection()
    yield ProjectionWriter(raw.driver_connection, f"test_{uuid.uuid4().hex[:8]}")  # type: ignore[arg-type]
    raw.close()


@pytest.fixture(scope="session")
def kafka_settings(kafka_servers: str) -> Iterator[KafkaSettings]:
    prefix = f"test{uuid.uuid4().hex[:8]}."
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka_servers, BATCH_TOPIC_PREFIX=prefix, BATCH_TOPIC_PARTITIONS=3
    )
    asyncio.run(create_topics(settings, job_types()))
    yield settings
    asyncio.run(delete_prefixed_topics(settings))


@pytest.fixture(scope="session")
def stack_env(kafka_settings: KafkaSettings, database_url: str) -> dict[str, str]:
    """The environment a worker or projector process of this test session runs with."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.kafka_bootstrap_servers,
        "BATCH_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "DATABASE_URL": database_url,
        "BATCH_TOPIC_PARTITIONS": "3",
        "LOG_LEVEL": "WARNING",
    }


class Processes:
    """Starts batchctl parts as child processes, as a user would, and stops them."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "batchctl", *args],
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
        )
        self.running.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def processes(stack_env: dict[str, str]) -> Iterator[Processes]:
    procs = Processes(stack_env)
    yield procs
    procs.stop_all()


def wait_for(condition: Callable[[], Any], timeout_s: float, message: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f}s: {message}")


@pytest.fixture(scope="session")
def api_settings(kafka_settings: KafkaSettings, database_url: str) -> ApiSettings:
    return ApiSettings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        BATCH_TOPIC_PREFIX=kafka_settings.topic_prefix,
        database_url=database_url,
    )


@pytest.fixture(scope="session")
def api(api_settings: ApiSettings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as client:
        yield client


@pytest.fixture(scope="session")
def keys(engine: Engine) -> dict[str, dict[str, str]]:
    with sessionmaker(engine)() as session:
        return {
            user: {"Authorization": f"Bearer {create_key(session, user_id=user).secret}"}
            for user in ("alice", "bob")
        }


def submit(
    api: TestClient, headers: dict[str, str], job_type: str, items: list[dict[str, Any]]
) -> uuid.UUID:
    response = api.post("/batch/jobs", headers=headers, json={"job_type": job_type, "items": items})
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["batch_job_id"])


def job_row(engine: Engine, job_id: uuid.UUID) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id})
        found = row.mappings().one_or_none()
    return dict(found) if found else None


def wait_job(
    engine: Engine,
    job_id: uuid.UUID,
    timeout_s: float,
    until: Callable[[dict[str, Any]], bool],
    message: str,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        row = job_row(engine, job_id)
        return row if row and until(row) else None

    return wait_for(check, timeout_s, message)  # type: ignore[no-any-return]


def item_statuses(engine: Engine, job_id: uuid.UUID) -> dict[int, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM items WHERE job_id = :id"), {"id": job_id})
        return {r["item_index"]: dict(r) for r in rows.mappings()}


async def publish(settings: KafkaSettings, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = make_producer(settings, max_request_size=4 << 20)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def publish_many(settings: KafkaSettings, messages: list[tuple[str, bytes, bytes]]) -> None:
    """Publish many messages quickly (in order per key), waiting for every acknowledgement."""
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        deliveries = [
            await producer.send(topic, value=value, key=key) for topic, key, value in messages
        ]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


def folded_positions(engine: Engine, prefix: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COALESCE(sum(next_offset), 0) FROM projection_checkpoints"
                    " WHERE projection = 'main' AND topic LIKE :prefix"
                ),
                {"prefix": prefix + "%"},
            ).scalar_one()
        )


def end_offsets_total(settings: KafkaSettings) -> int:
    """The number of events in every projected partition right now."""
    from projections.replay import _targets
    from streaming.clients import make_consumer

    async def total() -> int:
        consumer = make_consumer(settings, group_id=None)
        await consumer.start()
        try:
            return sum((await _targets(consumer, settings.topics.projected_pattern())).values())
        finally:
            await consumer.stop()

    return asyncio.run(total())


def wait_fully_folded(engine: Engine, settings: KafkaSettings, timeout_s: float) -> None:
    total = end_offsets_total(settings)
    wait_for(
        lambda: folded_positions(engine, settings.topic_prefix) >= total,
        timeout_s,
        "the projector to reach the end of every partition",
    )
