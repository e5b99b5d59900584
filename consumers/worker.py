"""The worker loop of one job type's consumer group.

Each poll is a batch. Records that share a key run in order; different keys run
concurrently, up to ``worker_concurrency`` at a time. Every record ends in an outcome event
or a dead letter; offsets are committed only after all of the batch's outcomes are
acknowledged by Kafka, so nothing is committed ahead of an unfinished item.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any, TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord, TopicPartition

from consumers.dead_letters import dead_letter, item_address
from consumers.handlers.base import Handler
from consumers.processing import RetryPolicy, process_item
from consumers.settings import WorkerSettings
from events.codec import EventDecodeError, decode, encode
from events.models import ItemFailed, ItemOutcome, ItemSubmitted

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        handler: Handler,  # type: ignore[type-arg]
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
    ):
        self.settings = settings
        self.handler = handler
        self.consumer = consumer
        self.producer = producer
        self.policy = RetryPolicy(
            settings.worker_max_attempts,
            settings.worker_backoff_base_s,
            settings.worker_backoff_max_s,
        )
        self._slots = asyncio.Semaphore(settings.worker_concurrency)
        self.outcomes_topic = settings.topics.outcomes
        self.dlq_topic = settings.topics.dlq
        self.counts: dict[str, int] = defaultdict(int)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.consumer.getmany(
                timeout_ms=500, max_records=self.settings.worker_max_batch
            )
            if batch:
                await self.process_batch(batch)

    async def process_batch(self, batch: dict[TopicPartition, list[Record]]) -> None:
        deliveries: list[Awaitable[Any]] = []
        lanes: dict[tuple[TopicPartition, bytes | None], list[Record]] = defaultdict(list)
        for tp, records in batch.items():
            for record in records:
                # A record without a key has no order to keep: it gets a lane of its own.
                lane_key = record.key if record.key is not None else f"#{record.offset}".encode()
                lanes[(tp, lane_key)].append(record)
        await asyncio.gather(*(self._run_lane(records, deliveries) for records in lanes.values()))
        await asyncio.gather(*deliveries)  # every outcome acknowledged before committing
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the new owner redelivers; deterministic outcome ids make
            # the repeated outcomes recognisable downstream.
            log.warning("offset commit failed after a rebalance: %s", exc)

    async def _run_lane(self, records: list[Record], deliveries: list[Awaitable[Any]]) -> None:
        async with self._slots:
            for record in records:
                await self._handle_record(record, deliveries)

    async def _handle_record(self, record: Record, deliveries: list[Awaitable[Any]]) -> None:
        try:
            event = decode(record.value, max_bytes=self.settings.worker_max_event_bytes)
        except EventDecodeError as exc:
            await self._dead_letter(record, exc.reason, exc.message, deliveries)
            address = item_address(exc.payload)
            if address is not None:
                job_id, index = address
                await self._emit(
                    ItemFailed.new(
                        job_id=job_id,
                        item_index=index,
                        attempts=0,
                        error_code="malformed_event",
                        error_message=f"{exc.reason}: {exc.message}",
                    ),
                    deliveries,
                )
            return
        if not isinstance(event, ItemSubmitted) or event.job_type != self.handler.job_type:
            await self._dead_letter(
                record,
                "unexpected_event",
                f"{event.event_type} for job type {getattr(event, 'job_type', None)!r} does not "
                f"belong on {record.topic}",
                deliveries,
            )
            return
        outcome = await process_item(self.handler, event, self.policy)
        await self._emit(outcome, deliveries)

    async def _emit(self, outcome: ItemOutcome, deliveries: list[Awaitable[Any]]) -> None:
        self.counts[outcome.event_type] += 1
        deliveries.append(
            await self.producer.send(
                self.outcomes_topic, value=encode(outcome), key=str(outcome.job_id).encode()
            )
        )

    async def _dead_letter(
        self, record: Record, reason: str, message: str, deliveries: list[Awaitable[Any]]
    ) -> None:
        self.counts["dead_lettered"] += 1
        log.warning(
            "dead-lettering %s[%d]@%d: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            message,
        )
        letter = dead_letter(record, reason, message)
        deliveries.append(
            await self.producer.send(
                self.dlq_topic, value=letter.value, key=letter.key, headers=letter.headers
            )
        )
