"""Which jobs are cancelled, known within a second by every worker process.

At start, the cancelled jobs are read from the projected ``jobs`` table together with the
positions the projector had reached in the jobs topic, in one snapshot; the jobs topic is
then tailed from exactly those positions. No cancellation falls in a gap, and a worker never
has to read the whole history of the jobs topic.
"""

import asyncio
import logging
import time
from uuid import UUID

from aiokafka import AIOKafkaConsumer
from sqlalchemy import Engine, text

from events.codec import EventDecodeError, decode
from events.models import JobCancelRequested
from streaming.clients import connection_options, topic_partitions
from streaming.settings import KafkaSettings

log = logging.getLogger(__name__)

SNAPSHOT = text("""
SELECT id FROM jobs
WHERE cancel_requested_at IS NOT NULL AND status NOT IN ('completed', 'cancelled', 'failed')
""")
POSITIONS = text("""
SELECT partition, next_offset FROM projection_checkpoints
WHERE projection = :projection AND topic = :topic
""")


def load_snapshot(engine: Engine, projection: str, topic: str) -> tuple[set[UUID], dict[int, int]]:
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            cancelled = {row[0] for row in conn.execute(SNAPSHOT)}
            positions = {
                p: o for p, o in conn.execute(POSITIONS, {"projection": projection, "topic": topic})
            }
    return cancelled, positions


class CancellationWatcher:
    def __init__(
        self,
        settings: KafkaSettings,
        engine: Engine | None,
        projection: str,
        ttl_s: float = 7 * 24 * 3600,
    ):
        self.settings = settings
        self.engine = engine
        self.projection = projection
        self.ttl_s = ttl_s
        # job id's text -> when it was learned; pruned after ttl_s so that memory stays
        # bounded. By text: the worker asks per item, and a str's hash is cached (a UUID's
        # runs Python code).
        self.cancelled: dict[str, float] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    def is_cancelled(self, job_id: str) -> bool:
        """Whether the job (its id's canonical text) has been cancelled."""
        return job_id in self.cancelled

    async def start(self) -> None:
        topic = self.settings.topics.jobs
        positions: dict[int, int] = {}
        if self.engine is not None:
            known, positions = await asyncio.to_thread(
                load_snapshot, self.engine, self.projection, topic
            )
            now = time.monotonic()
            self.cancelled = dict.fromkeys(map(str, known), now)
        consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        partitions = await topic_partitions(consumer, lambda name: name == topic)
        consumer.assign(partitions)
        for tp in partitions:
            if tp.partition in positions:
                consumer.seek(tp, positions[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._tail())
        log.info("cancellations: %d known at start, tailing %s", len(self.cancelled), topic)

    async def _tail(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batch.values():
                for record in records:
                    if b"JobCancelRequested" not in (record.value or b""):
                        continue  # cheap skip of the JobSubmitted traffic
                    try:
                        event = decode(record.value)
                    except EventDecodeError:
                        continue  # the projector and the DLQ tooling report these
                    if isinstance(event, JobCancelRequested):
                        self.cancelled[str(event.job_id)] = time.monotonic()
            self._prune()

    def _prune(self) -> None:
        if not self.cancelled:
            return
        oldest = next(iter(self.cancelled.values()))  # dicts keep insertion order
        horizon = time.monotonic() - self.ttl_s
        if oldest >= horizon:
            return
        self.cancelled = {job: at for job, at in self.cancelled.items() if at >= horizon}

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
