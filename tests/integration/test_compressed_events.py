"""Events compressed by their publisher, with any codec Kafka has (gzip, snappy, lz4, zstd:
an upstream system's producer picks its own), are read by the workers and the projector like
uncompressed ones (a consumer without the codec's library raises UnsupportedCodecError at
every poll: one upstream producer set to lz4 stopped the projector for everyone). Real
Kafka, PostgreSQL and processes."""

import asyncio
import uuid

from events.codec import encode
from streaming.clients import make_producer
from tests import factories as f
from tests.integration.conftest import wait_job

CODECS = ("gzip", "snappy", "lz4", "zstd", None)
ITEMS_PER_CODEC = 200


async def _publish(settings, codec: str | None, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = make_producer(settings, compression_type=codec, linger_ms=20)
    await producer.start()
    try:
        deliveries = [await producer.send(t, value=v, key=k) for t, k, v in messages]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


def test_items_published_with_every_codec_are_processed_and_folded(
    kafka_settings, engine, processes
):
    topics = kafka_settings.topics
    total = ITEMS_PER_CODEC * len(CODECS)
    job_id = uuid.uuid4()
    asyncio.run(
        _publish(
            kafka_settings,
            "zstd",
            [(topics.jobs, str(job_id).encode(), encode(f.job_submitted(job_id, total)))],
        )
    )
    for n, codec in enumerate(CODECS):
        indexes = range(n * ITEMS_PER_CODEC, (n + 1) * ITEMS_PER_CODEC)
        items = [
            (topics.items("query"), f"{job_id}:{i}".encode(), encode(f.item_submitted(job_id, i)))
            for i in indexes
        ]
        asyncio.run(_publish(kafka_settings, codec, items))
    processes.start("projector")
    processes.start("worker", "--job-type", "query")
    job = wait_job(engine, job_id, 120, lambda j: j["status"] == "completed", "the job")
    assert (job["processed_items"], job["success_items"], job["failed_items"]) == (total, total, 0)
