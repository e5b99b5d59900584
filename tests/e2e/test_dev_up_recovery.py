"""``batchctl dev up`` after the broker died with kill -9 brings it back on the first try,
however long its log recovery takes, with every record still there — also when
``KAFKA_BOOTSTRAP_SERVERS`` (from ``.dev/env``) names it. A broker of its own, on other
ports and in a folder of its own, so the session's broker is not touched."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.structs import TopicPartition

from batchctl.dev import kafka_broker
from batchctl.dev.settings import DevSettings
from streaming.clients import make_consumer, make_producer
from streaming.settings import KafkaSettings
from tests.e2e.test_batchctl_run import free_port
from tests.integration.conftest import wait_for

RECORDS = 20_000


def _dev_up(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchctl", "dev", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


async def _fill(settings: KafkaSettings) -> None:
    producer = make_producer(settings, linger_ms=20)
    await producer.start()
    try:
        sent = [
            await producer.send(settings.topics.jobs, value=b"x" * 200, key=b"%d" % i)
            for i in range(RECORDS)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _records(settings: KafkaSettings) -> int:
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(settings.topics.jobs, p)
            for p in consumer.partitions_for_topic(settings.topics.jobs) or set()
        ]
        if not partitions:
            await consumer._client.force_metadata_update()  # type: ignore[attr-defined]
            partitions = [
                TopicPartition(settings.topics.jobs, p)
                for p in consumer.partitions_for_topic(settings.topics.jobs) or set()
            ]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def test_dev_up_after_a_kill_9_brings_the_broker_back_first_time(tmp_path: Path, stack_env):
    port, controller = free_port(), free_port()
    env = {
        **stack_env,
        "BATCH_DEV_DIR": str(tmp_path / "dev"),
        "BATCH_DEV_KAFKA_PORT": str(port),
        "BATCH_DEV_CONTROLLER_PORT": str(controller),
        "BATCH_DEV_KAFKA_HEAP_MB": "256",
    }
    env.pop("KAFKA_BOOTSTRAP_SERVERS")
    settings = DevSettings(
        dir=tmp_path / "dev", kafka_port=port, controller_port=controller, kafka_heap_mb=256
    )
    kafka = KafkaSettings(
        kafka_bootstrap_servers=settings.bootstrap_servers,
        BATCH_TOPIC_PREFIX=stack_env["BATCH_TOPIC_PREFIX"],
    )
    try:
        first = _dev_up(env)
        assert first.returncode == 0, first.stdout + first.stderr
        asyncio.run(_fill(kafka))
        written = asyncio.run(_records(kafka))
        assert written == RECORDS

        pid = kafka_broker.running_pid(settings)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: kafka_broker.running_pid(settings) is None, 30, "the broker to die")
        assert not kafka_broker.shut_down_cleanly(settings)

        # as a user who sourced .dev/env: KAFKA_BOOTSTRAP_SERVERS names the dead broker
        again = _dev_up({**env, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers})
        assert again.returncode == 0, again.stdout + again.stderr
        assert "started" in again.stdout
        assert asyncio.run(_records(kafka)) == written  # nothing lost
    finally:
        print(kafka_broker.stop(settings))
    assert kafka_broker.shut_down_cleanly(settings)  # a clean stop leaves the marker


@pytest.mark.parametrize("servers", ["127.0.0.1:1", "kafka.example:9092"])
def test_someone_elses_kafka_is_only_waited_for(tmp_path: Path, servers: str):
    settings = DevSettings(dir=tmp_path / "dev")
    assert not kafka_broker.is_ours(settings, servers)
