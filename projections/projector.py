"""The projector loop: poll a batch, fold it, write it with its positions in one transaction.

Positions live in PostgreSQL. On assignment the consumer seeks to the stored positions (or
the beginning of a partition never folded); Kafka-side commits are informational only.
Events that cannot be decoded are logged, counted and passed over: they stay in the topic,
and the worker that consumes the same items dead-letters them.
"""

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, get_args

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from events.codec import EventDecodeError, decode
from events.models import ItemOutcome, ItemSubmitted
from events.typed_read import job_uuid, json_reader, typed_dict_of
from projections.event_time import EventTimeBatches
from projections.fold import OUTCOME_STATUS, Changes
from projections.settings import ProjectorSettings
from projections.writer import ProjectionWriter, StagedChanges
from streaming.metrics import PROJECTOR_BATCH, PROJECTOR_EVENTS, PROJECTOR_WRITE_SECONDS

log = logging.getLogger(__name__)

# The items and outcomes topics, the projector's bulk, are read in one pass into typed dicts
# (``events.typed_read``) and folded from their fields; what these refuse, and the jobs
# topic's few events, are decoded the long way by the codec.
_read_submitted = json_reader(typed_dict_of(ItemSubmitted))
_read_outcome = json_reader(*(typed_dict_of(cls) for cls in get_args(ItemOutcome)))


def _fold_submitted(changes: Changes, value: bytes) -> None:
    e = _read_submitted(value)
    changes.submitted(job_uuid(e["job_id"]), e["item_index"], e["input"], e["occurred_at"])


def _fold_outcome(changes: Changes, value: bytes) -> None:
    e = _read_outcome(value)
    changes.outcome(
        job_uuid(e["job_id"]),
        e["item_index"],
        OUTCOME_STATUS[e["event_type"]],
        e["attempts"],
        e["duration_ms"],
        e["occurred_at"],
        e.get("output"),
        e.get("error_code"),
        e.get("error_message"),
    )


class SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        writer: ProjectionWriter,
        stored: Callable[[], Awaitable[None]] | None = None,
        batches: EventTimeBatches | None = None,
    ):
        """``stored``: waits until no batch is being written (the writer's connection is
        shared, and the positions to seek to are those of the last committed batch).
        ``batches``: forgets what it holds of a partition as the consumer seeks in it."""
        self.consumer = consumer
        self.writer = writer
        self.stored = stored
        self.batches = batches

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        pass  # every written batch already stored its positions

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if self.stored is not None:
            await self.stored()
        stored = await asyncio.to_thread(self.writer.load_positions)
        resumed = 0
        for tp in assigned:
            if self.batches is not None:
                self.batches.forget(tp)  # read before the seek
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
                resumed += 1
        log.info(
            "assigned %d partitions: %d resume at their stored positions, the rest from the start",
            len(assigned),
            resumed,
        )


# The writer's thread needs the GIL back each time PostgreSQL answers (several times a
# batch), and the fold on the loop's thread gives it up only every switch interval: 5 ms by
# default. At 1 ms the writer took ~10 % less time a batch (BENCHMARKS.md, stop 14).
WRITER_SWITCH_INTERVAL_S = 0.001


def favour_the_writer() -> None:
    """Call in a process that folds and writes (the projector, a replay)."""
    sys.setswitchinterval(WRITER_SWITCH_INTERVAL_S)


async def write_behind(
    previous: "asyncio.Task[None] | None", write: Coroutine[Any, Any, None]
) -> "asyncio.Task[None]":
    """Wait for the previous write, then start ``write`` and let it begin (hand its batch to
    its thread) before the caller folds the next batch. Without that first step it would
    begin only at the caller's next suspension, after the fold: fetched records come back
    from ``getmany`` without suspending."""
    if previous is not None:
        await previous
    task = asyncio.create_task(write)
    await asyncio.sleep(0)
    return task


class Projector:
    def __init__(
        self, settings: ProjectorSettings, consumer: AIOKafkaConsumer, writer: ProjectionWriter
    ):
        self.settings = settings
        self.consumer = consumer
        self.writer = writer
        self.batches = EventTimeBatches(consumer, settings.projector_max_batch)
        self.counts: Counter[str] = Counter()
        self._storing: asyncio.Future[None] | None = None  # the batch PostgreSQL is writing

    def subscribe(self) -> None:
        self.consumer.subscribe(
            pattern=self.settings.topics.projected_pattern(),
            listener=SeekToStoredPositions(self.consumer, self.writer, self.stored, self.batches),
        )

    async def stored(self) -> None:
        """Wait until no batch is being written to PostgreSQL (whether or not it succeeds:
        a failed write is rolled back, and reported by the loop)."""
        if self._storing is not None:
            await asyncio.wait([self._storing])

    async def run(self, stop: asyncio.Event) -> None:
        """Fold and stage batch N+1 while batch N is written: psycopg2 releases the GIL while
        PostgreSQL works, so the Python work (decoding, folding, building the COPY text) and
        PostgreSQL's overlap. Writes stay in order. Batches come in event-time order across
        partitions (``projections.event_time``), so that an item's submission and outcome
        are written together."""
        writing: asyncio.Task[None] | None = None
        try:
            while not stop.is_set():
                if writing is not None and writing.done():
                    # A failed write (the tables swapped by a replay, PostgreSQL gone) ends
                    # the session now, not when a next batch comes, which may be never.
                    writing.result()
                batch = await self.batches.next_batch(timeout_ms=200)
                if not batch:
                    continue
                changes = self.fold(batch)
                staged = self.writer.stage(changes)
                writing = await write_behind(writing, self._write(staged, changes))
        finally:
            if writing is not None:
                await writing

    def fold(self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> Changes:
        changes = Changes()
        max_bytes = self.settings.projector_max_event_bytes
        for tp, records in batch.items():
            read_fast = self._read_fast(tp.topic)
            for record in records:
                value = record.value
                if read_fast is not None and value is not None and len(value) <= max_bytes:
                    try:
                        read_fast(changes, value)
                        continue
                    except ValidationError:
                        pass  # the long way: it says what is wrong, or upcasts
                try:
                    event = decode(value, max_bytes=max_bytes)
                except EventDecodeError as exc:
                    self.counts["undecodable"] += 1
                    log.warning(
                        "skipping undecodable event %s[%d]@%d: %s",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        exc,
                    )
                else:
                    changes.apply(event)
            if records:  # a partition's records come in offset order
                changes.advance(tp.topic, tp.partition, records[-1].offset)
        return changes

    async def _write(self, staged: StagedChanges, changes: Changes) -> None:
        started = time.perf_counter()
        # Handed to the thread now (a task wrapping ``to_thread`` would only start later).
        loop = asyncio.get_running_loop()
        self._storing = loop.run_in_executor(None, self.writer.write, staged)
        await self._storing
        PROJECTOR_WRITE_SECONDS.observe(time.perf_counter() - started)
        PROJECTOR_BATCH.observe(changes.events)
        PROJECTOR_EVENTS.inc(changes.events)
        self.counts["events"] += changes.events
        try:  # informational only: the positions that count are in PostgreSQL
            await self.consumer.commit(
                {TopicPartition(t, p): o for (t, p), o in changes.positions.items()}
            )
        except Exception as exc:
            log.debug("informational offset commit failed: %s", exc)

    def _read_fast(self, topic: str) -> Callable[[Changes, bytes], None] | None:
        """The one-pass reader of what a topic carries in bulk (items, outcomes)."""
        if topic == self.settings.topics.outcomes:
            return _fold_outcome
        if self.settings.topics.job_type_of_items_topic(topic) is not None:
            return _fold_submitted
        return None  # the jobs topic: a few events a job, decoded the long way
