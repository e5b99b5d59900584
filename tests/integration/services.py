"""Where the real services come from: the environment (``KAFKA_BOOTSTRAP_SERVERS``,
``DATABASE_URL``, as ``.ci/run`` and the README's test command set them), or else
testcontainers when a Docker engine is available."""

import contextlib
import os
from collections.abc import Iterator

import pytest

KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Apache Kafka 3.9
POSTGRES_IMAGE = "postgres:16"


def docker_available() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def _unavailable(what: str) -> None:
    message = (
        f"{what} is not set and no Docker engine is available: run the README's test "
        f"command (scripts/test), or `batchctl dev up` and export it"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def kafka_bootstrap_servers() -> Iterator[str]:
    if servers := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield servers
        return
    if not docker_available():
        _unavailable("KAFKA_BOOTSTRAP_SERVERS")
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer(KAFKA_IMAGE).with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    if not docker_available():
        _unavailable("DATABASE_URL")
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer(POSTGRES_IMAGE, driver="psycopg2") as postgres:
        yield postgres.get_connection_url()
