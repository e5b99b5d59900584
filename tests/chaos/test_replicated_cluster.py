"""Chaos on a replicated cluster: three KRaft nodes of this machine (``batchctl dev``'s own
code, on ports and in a directory of their own), topics with three copies and
``min.insync.replicas=2``. One node is killed with kill -9 at 30 % of a 60,000-item job and
not brought back: the job completes, no item failed, none lost, none counted twice. Then the
node comes back, another is killed, and a second job completes the same way. Prints the
longest gap between two outcomes the projector wrote, around each fault."""

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from batchctl.dev import kafka_broker
from batchctl.dev.settings import DevSettings
from benchmarks.common import free_port_block
from events.codec import encode
from jobtypes.registry import job_types
from streaming.clients import make_admin
from streaming.settings import KafkaSettings
from streaming.topics_admin import create_topics
from tests import factories as f
from tests.integration.conftest import Processes, publish_many, wait_for, wait_job

ITEMS = 60_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[DevSettings]:  # type: ignore[no-untyped-def]
    if not kafka_broker.jars_cached(DevSettings()):
        pytest.skip("the Kafka jars are not cached (`batchctl dev up` fetches them)")
    settings = DevSettings(
        dir=tmp_path_factory.mktemp("cluster"),
        kafka_port=free_port_block(6),
        kafka_brokers=3,
        kafka_heap_mb=256,
    )
    print(kafka_broker.start(settings))
    try:
        yield settings
    finally:
        print(kafka_broker.stop(settings))


@pytest.fixture(scope="module")
def cluster_kafka(cluster: DevSettings) -> KafkaSettings:
    settings = KafkaSettings(
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        BATCH_TOPIC_PREFIX=f"cluster{uuid.uuid4().hex[:6]}.",
        BATCH_TOPIC_PARTITIONS=3,
        BATCH_TOPIC_REPLICATION=3,
    )
    asyncio.run(create_topics(settings, job_types()))
    return settings


def _topic_layout(settings: KafkaSettings) -> dict[str, tuple[int, str, str]]:
    """Each of our topics: (replicas of each partition, min.insync.replicas, unclean leader
    election), once every broker knows all of them (metadata spreads in moments)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def read() -> dict[str, tuple[int, str, str]]:
        admin = make_admin(settings)
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
            described = await admin.describe_topics(ours)
            if len(ours) < 6 or any(not d["partitions"] for d in described):
                return {}
            replicas = {
                d["topic"]: {len(p["replicas"]) for p in d["partitions"]} for d in described
            }
            answers = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t) for t in ours]
            )
            layout = {}
            for answer in answers:
                for resource in answer.to_object()["resources"]:
                    entries = {
                        e["config_names"]: e["config_value"] for e in resource["config_entries"]
                    }
                    name = resource["resource_name"]
                    if resource["error_code"] or "min.insync.replicas" not in entries:
                        return {}  # a broker that has not got the topic's config yet: again
                    (copies,) = replicas[name]
                    layout[name] = (
                        copies,
                        entries["min.insync.replicas"],
                        entries["unclean.leader.election.enable"],
                    )
            return layout
        finally:
            await admin.close()

    return wait_for(lambda: asyncio.run(read()), 60, "the topics on every broker")  # type: ignore[no-any-return]


def _publish_job(settings: KafkaSettings) -> uuid.UUID:
    topics = settings.topics
    job_id = uuid.uuid4()
    messages = [(topics.jobs, str(job_id).encode(), encode(f.job_submitted(job_id, ITEMS)))]
    messages += [
        (topics.items("query"), f"{job_id}:{i}".encode(), encode(f.item_submitted(job_id, i)))
        for i in range(ITEMS)
    ]
    asyncio.run(publish_many(settings, messages))
    return job_id


def _ended(engine: Any, job_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM items WHERE job_id = :id AND status <> 'pending'"),
                {"id": job_id},
            ).scalar_one()
        )


def _longest_gap_s(engine: Any, job_id: uuid.UUID) -> float:
    """The longest time between two consecutive outcomes of the job, as processed."""
    with engine.connect() as conn:
        return float(
            conn.execute(
                text(
                    "SELECT COALESCE(max(gap), 0) FROM (SELECT extract(epoch FROM processed_at"
                    " - lag(processed_at) OVER (ORDER BY processed_at)) AS gap FROM items"
                    " WHERE job_id = :id) AS gaps"
                ),
                {"id": job_id},
            ).scalar_one()
        )


def _assert_exact(engine: Any, job_id: uuid.UUID) -> None:
    job = wait_job(engine, job_id, 600, lambda j: j["status"] == "completed", "the job")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT item_index),"
                " count(*) FILTER (WHERE status = 'success'),"
                " count(*) FILTER (WHERE status = 'failed') FROM items WHERE job_id = :id"
            ),
            {"id": job_id},
        ).one()
    assert tuple(rows) == (ITEMS, ITEMS, ITEMS, 0), rows
    assert (job["processed_items"], job["success_items"], job["failed_items"]) == (ITEMS, ITEMS, 0)


def _run_with_a_node_killed(
    engine: Any, settings: KafkaSettings, cluster: DevSettings, node_id: int
) -> None:
    job_id = _publish_job(settings)
    wait_for(lambda: _ended(engine, job_id) >= ITEMS * 30 // 100, 300, "30 % of the job")
    pid = kafka_broker.kill_node(cluster, node_id)
    print(f"\ncluster: node {node_id} (pid {pid}) killed with kill -9 at 30 % of the job")
    _assert_exact(engine, job_id)
    print(f"cluster: the longest gap between outcomes: {_longest_gap_s(engine, job_id):.1f}s")


def test_a_job_completes_exactly_while_a_node_of_three_is_killed(
    cluster, cluster_kafka, engine, stack_env
):
    layout = _topic_layout(cluster_kafka)
    assert set(layout.values()) == {(3, "2", "false")}, layout
    env = {
        **stack_env,
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "BATCH_TOPIC_PREFIX": cluster_kafka.topic_prefix,
        "BATCH_TOPIC_REPLICATION": "3",
    }
    parts = Processes(env)
    try:
        parts.start("projector")
        parts.start("worker", "--job-type", "query")
        _run_with_a_node_killed(engine, cluster_kafka, cluster, node_id=2)
        # the node comes back and catches up; then another one is killed
        print(kafka_broker.start_node(cluster, 2))
        wait_for(
            lambda: all(s["state"] == "running" for s in kafka_broker.node_states(cluster)),
            120,
            "all three nodes running",
        )
        time.sleep(5)  # (its replicas rejoin the in-sync sets)
        _run_with_a_node_killed(engine, cluster_kafka, cluster, node_id=1)
        for part in parts.running:
            assert part.poll() is None, f"{part.args} exited with {part.returncode}"
    finally:
        parts.stop_all()
        os.environ.pop("BATCH_TOPIC_REPLICATION", None)
