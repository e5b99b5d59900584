"""Fair share (README, "Fair share: lanes"), with a real worker, Kafka and the projector: a
small interactive job of one user completes while another user's bulk backlog is still far
from done, and both end exact, each in its own lane's topics."""

import asyncio
import time
import uuid

from sqlalchemy import text

from events.codec import encode
from tests import factories as f
from tests.integration.conftest import publish_many, wait_job
from tests.integration.test_poison_corpus import _rows

BULK_ITEMS = 60_000
SMALL_ITEMS = 10


def _outcomes_of_jobs(settings, topic: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """How many outcomes of each job a topic holds (outcomes are keyed by their job's id)."""
    from streaming.clients import make_consumer, topic_partitions

    async def count() -> dict[str, int]:
        consumer = make_consumer(settings, group_id=None)
        await consumer.start()
        try:
            tps = await topic_partitions(consumer, lambda name: name == topic)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            counts: dict[str, int] = {}
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        job = record.key.decode()
                        counts[job] = counts.get(job, 0) + 1
            return counts
        finally:
            await consumer.stop()

    return asyncio.run(count())


def test_a_small_job_is_not_queued_behind_another_users_bulk_backlog(
    engine, kafka_settings, processes
):
    topics = kafka_settings.topics
    bulk = uuid.uuid4()
    backlog = [(topics.jobs, str(bulk).encode(), encode(f.job_submitted(bulk, BULK_ITEMS)))]
    backlog += [
        (topics.items("query"), f"{bulk}:{i}".encode(), encode(f.item_submitted(bulk, i)))
        for i in range(BULK_ITEMS)
    ]
    asyncio.run(publish_many(kafka_settings, backlog))
    processes.start("projector")
    # a slow worker, so that the backlog lasts: a few items in flight at a time
    processes.start("worker", "--job-type", "query", WORKER_CONCURRENCY="4")
    wait_job(engine, bulk, 120, lambda j: j["processed_items"] >= 1000, "the bulk job to run")

    small = uuid.uuid4()
    submitted = f.job_submitted(small, SMALL_ITEMS, user="bob").model_copy(
        update={"priority": "interactive"}
    )
    lane = topics.items("query", "interactive")
    asyncio.run(
        publish_many(
            kafka_settings,
            [
                *(
                    (lane, f"{small}:{i}".encode(), encode(f.item_submitted(small, i)))
                    for i in range(SMALL_ITEMS)
                ),
                (topics.jobs, str(small).encode(), encode(submitted)),
            ],
        )
    )
    sent = time.monotonic()
    done = wait_job(engine, small, 60, lambda j: j["status"] == "completed", "the small job")
    took = time.monotonic() - sent
    with engine.connect() as conn:
        bulk_done = conn.execute(
            text("SELECT processed_items FROM jobs WHERE id = :id"), {"id": bulk}
        ).scalar_one()
    print(f"\nthe small job completed {took:.2f}s after it was sent, the bulk job at {bulk_done:,}")
    assert bulk_done < BULK_ITEMS * 0.8, "the small job waited for the backlog"
    assert (done["success_items"], done["priority"]) == (SMALL_ITEMS, "interactive")

    finished = wait_job(engine, bulk, 300, lambda j: j["status"] == "completed", "the bulk job")
    assert (finished["success_items"], finished["failed_items"]) == (BULK_ITEMS, 0)
    rows = _rows(engine, {bulk, small}, of_mine=True)
    assert len(rows["items"]) == BULK_ITEMS + SMALL_ITEMS
    # each job's outcomes in its lane's topic
    interactive = _outcomes_of_jobs(kafka_settings, topics.outcomes_of("interactive"))
    assert interactive.get(str(small)) == SMALL_ITEMS and str(bulk) not in interactive
    bulk_lane = _outcomes_of_jobs(kafka_settings, topics.outcomes)
    assert bulk_lane.get(str(bulk), 0) >= BULK_ITEMS and str(small) not in bulk_lane
