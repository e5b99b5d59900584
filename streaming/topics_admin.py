"""Idempotent topic creation. The event logs keep events forever (``retention.ms=-1``)."""

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from streaming.clients import make_admin
from streaming.settings import KafkaSettings

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
# The DLQ keeps what was refused unchanged, also what was refused for its size.
DLQ_EXTRA = {"max.message.bytes": str(8 << 20)}


def _durability(copies: int) -> dict[str, str]:
    """With three copies a write is acknowledged once two hold it (``acks=all``), and no
    replica that missed writes is ever made leader: losing one broker loses nothing and
    stops nothing."""
    if copies < 2:
        return {}
    return {
        "min.insync.replicas": str(max(1, min(2, copies - 1))),
        "unclean.leader.election.enable": "false",
    }


async def create_topics(settings: KafkaSettings, job_types: list[str]) -> list[str]:
    """Create the missing topics; return the names of those created."""
    topics = settings.topics
    wanted = [*topics.event_logs(job_types), topics.notifications, topics.dlq]
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            new = [
                NewTopic(
                    name=name,
                    num_partitions=settings.topic_partitions,
                    replication_factor=settings.topic_replication_factor,
                    topic_configs={
                        **FOREVER,
                        **_durability(settings.topic_replication_factor),
                        **(DLQ_EXTRA if name == topics.dlq else {}),
                    },
                )
                for name in missing
            ]
            response = await admin.create_topics(new, timeout_ms=30_000)
            for topic_error in response.topic_errors:
                name, code = topic_error[0], topic_error[1]
                if code and code != TopicAlreadyExistsError.errno:  # a lost race is fine
                    raise for_code(code)(f"creating topic {name}: {topic_error[2:]}")
        return missing
    finally:
        await admin.close()


async def delete_prefixed_topics(settings: KafkaSettings) -> list[str]:
    """Delete every topic under the settings' prefix (test and benchmark clean-up)."""
    admin = make_admin(settings)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if ours:
            await admin.delete_topics(ours)
        return ours
    finally:
        await admin.close()
