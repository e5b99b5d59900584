"""The projector loop: poll a batch, fold it, write it with its positions in one transaction.

Positions live in PostgreSQL. On assignment the consumer seeks to the stored positions (or
the beginning of a partition never folded); Kafka-side commits are informational only.

No record stops the fold:

- An event that cannot be decoded or breaks the contract is logged, counted and passed over.
  From the jobs and outcomes topics it is dead-lettered here (an items topic's are the
  workers', who fail the item it names so that its job can finish).
- A batch that PostgreSQL refuses as data (``storage.errors.refused_as_data``) is written
  again in halves, in event-time order, until the records it refuses are alone. Each is
  dead-lettered (``unprojectable``) and its item, when it names one, fails with that code
  (the event is the item's real submission or outcome, so nothing else would finish it);
  the rest is written as usual, in the same run.
"""

import asyncio
import heapq
import logging
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeAlias, get_args

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from events.codec import EventDecodeError, address_fields, decode
from events.limits import safe_text
from events.models import ItemOutcome, ItemSubmitted
from events.topics import Topics
from events.typed_read import NeedsFullCheck, job_uuid, json_reader, typed_dict_of
from projections.event_time import EventTimeBatches
from projections.fold import OUTCOME_STATUS, Changes
from projections.metrics import (
    PROJECTOR_BATCH,
    PROJECTOR_EVENTS,
    PROJECTOR_QUARANTINED,
    PROJECTOR_WRITE_SECONDS,
)
from projections.settings import ProjectorSettings
from projections.writer import ProjectionWriter, StagedChanges
from storage.errors import refused_as_data
from streaming.dead_letters import DeadLetter, dead_letter, item_address

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


Record: TypeAlias = ConsumerRecord[Any, Any]
Batch: TypeAlias = dict[TopicPartition, list[Record]]
DeadLetters: TypeAlias = Callable[[list[DeadLetter]], Awaitable[None]]
"""Publishes dead letters and returns once Kafka has acknowledged them."""

UNPROJECTABLE = "unprojectable"


def _record_time(record: Record) -> datetime:
    """The time a quarantined record stands for: its Kafka timestamp (the same on a replay)."""
    return datetime.fromtimestamp(max(0, record.timestamp) / 1000, UTC)


def _in_event_time(batch: Batch) -> list[tuple[TopicPartition, Record]]:
    """The batch's records by timestamp across partitions, each partition's in offset order
    (an item's submission before its outcome)."""
    return list(
        heapq.merge(
            *([(tp, r) for r in records] for tp, records in batch.items()),
            key=lambda pair: pair[1].timestamp,
        )
    )


def _grouped(pairs: list[tuple[TopicPartition, Record]]) -> Batch:
    batch: Batch = {}
    for tp, record in pairs:
        batch.setdefault(tp, []).append(record)
    return batch


class SeekToStoredPositions(ConsumerRebalanceListener):
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
        """Let the batch being written finish (it stores its positions with its rows), and
        drop what is held of the revoked partitions: another projector folds them now,
        from the positions stored."""
        if self.stored is not None:
            await self.stored()
        if self.batches is not None:
            for tp in revoked:
                self.batches.forget(tp)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Seek each partition to its stored position. They are paused meanwhile: the
        consumer may fetch from a new partition's first position as soon as it is assigned,
        and what it folded before the seek would be folded again."""
        self.consumer.pause(*assigned)
        try:
            if self.stored is not None:
                await self.stored()
            stored = await asyncio.to_thread(self.writer.load_positions)
            from_start = []
            for tp in assigned:
                offset = stored.get((tp.topic, tp.partition))
                if offset is None:
                    from_start.append(tp)
                else:
                    self.consumer.seek(tp, offset)
            if from_start:
                await self.consumer.seek_to_beginning(*from_start)
            if self.batches is not None:  # what was drawn before the seeks (none since)
                for tp in assigned:
                    self.batches.forget(tp)
        finally:
            self.consumer.resume(*assigned)
        log.info(
            "assigned %d partitions: %d resume at their stored positions, the rest from the start",
            len(assigned),
            len(assigned) - len(from_start),
        )


# The writer's thread needs the GIL back each time PostgreSQL answers (several times a
# batch), and the fold on the loop's thread gives it up only every switch interval (5 ms by
# default): a shorter one gives the writer its turns sooner (BENCHMARKS.md, stop 14).
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


class Folded(NamedTuple):
    """A batch as ``Projector.prepare`` leaves it for ``Projector.write``."""

    batch: Batch
    changes: Changes
    letters: list[DeadLetter]
    staged: StagedChanges | Exception  # the encoder's refusal, if it refused a value
    stored: "asyncio.Future[None]"  # done once written (or failed)


def urgent_topics(topics: Topics) -> Callable[[str], bool]:
    """The topics folded as soon as they are read, never held back in event time for the
    bulk lane's backlog: the jobs (a few events a job) and the interactive lane's."""
    jobs = topics.jobs
    return lambda topic: topic == jobs or topics.lane_of(topic) == "interactive"


class Projector:
    def __init__(
        self,
        settings: ProjectorSettings,
        consumer: AIOKafkaConsumer,
        writer: ProjectionWriter,
        dead_letters: DeadLetters | None = None,
        announced: Callable[[], None] | None = None,
    ):
        """``dead_letters``: where refused records go (the live projector's; a replay
        passes None: the live projector dead-lettered them already). ``announced``: called
        after a write that finished (and announced) jobs."""
        self.settings = settings
        self.consumer = consumer
        self.writer = writer
        self.dead_letters = dead_letters
        self.announced = announced
        self.batches = EventTimeBatches(
            consumer, settings.projector_max_batch, urgent=urgent_topics(settings.topics)
        )
        self.counts: Counter[str] = Counter()
        self._storing: asyncio.Future[None] | None = None  # the batch PostgreSQL is writing

    def subscribe(self) -> None:
        self.consumer.subscribe(
            pattern=self.settings.topics.projected_pattern(),
            listener=SeekToStoredPositions(self.consumer, self.writer, self.stored, self.batches),
        )

    async def stored(self) -> None:
        """Wait until no batch folded is still to be written to PostgreSQL (whether or not it
        succeeds: a failed write is rolled back, and reported by the loop)."""
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
                folded = self.prepare(batch)
                writing = await write_behind(writing, self.write(folded))
        finally:
            if writing is not None:
                await writing

    def fold(self, batch: Batch) -> Changes:
        """The batch's changes (``prepare`` also keeps its dead letters)."""
        return self._fold(batch, [])

    def _fold(self, batch: Batch, letters: list[DeadLetter]) -> Changes:
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
                    except (ValidationError, NeedsFullCheck):
                        pass  # the long way: it says what is wrong, or upcasts
                try:
                    event = decode(value, max_bytes=max_bytes)
                except EventDecodeError as exc:
                    self._refused(letters, tp, record, exc)
                else:
                    changes.apply(event)
            if records:  # a partition's records come in offset order
                changes.advance(tp.topic, tp.partition, records[-1].offset)
        return changes

    def _refused(
        self,
        letters: list[DeadLetter],
        tp: TopicPartition,
        record: Record,
        exc: EventDecodeError,
    ) -> None:
        """An event that breaks the contract is passed over: an items topic's are the
        workers' to dead-letter (failing the item they name); the others' are dead-lettered
        here. (A refused outcome is not the item's outcome: its worker's real one still
        comes and is folded.)"""
        self.counts["undecodable"] += 1
        log.warning(
            "passing over undecodable event %s[%d]@%d: %s",
            tp.topic,
            tp.partition,
            record.offset,
            exc,
        )
        if self.settings.topics.job_type_of_items_topic(tp.topic) is None:
            PROJECTOR_QUARANTINED.labels(exc.reason).inc()
            letters.append(dead_letter(record, exc.reason, exc.message))

    def prepare(self, batch: Batch) -> Folded:
        """Fold a batch and stage it for the writer: the Python part of a batch, done on
        the loop's thread while PostgreSQL writes the one before."""
        letters: list[DeadLetter] = []
        changes = self._fold(batch, letters)
        try:
            staged: StagedChanges | Exception = self.writer.stage(changes)
        except Exception as exc:  # the encoder refused a value
            if not refused_as_data(exc):
                raise
            staged = exc
        # From now until it is written, an assignment waits for it (``stored``): positions
        # read before would fold the batch, and send its dead letters, again.
        self._storing = asyncio.get_running_loop().create_future()
        return Folded(batch, changes, letters, staged, self._storing)

    async def write(self, folded: Folded) -> None:
        """Write a prepared batch with its positions (in a thread), once its dead letters
        are acknowledged. Records PostgreSQL refuses as data are quarantined (see the
        module)."""
        storing = folded.stored
        try:
            await self._dead_letter(folded.letters)
            staged = folded.staged
            if isinstance(staged, StagedChanges):
                try:
                    await self._store(staged, folded.changes)
                    return
                except Exception as exc:
                    if not refused_as_data(exc):
                        raise
                    staged = exc
            log.warning("PostgreSQL refused a batch as data (%r): isolating", staged)
            await self._isolate(_in_event_time(folded.batch), staged)
        finally:
            if not storing.done():
                storing.set_result(None)

    async def _store(self, staged: StagedChanges, changes: Changes) -> None:
        started = time.perf_counter()
        finished = await asyncio.get_running_loop().run_in_executor(None, self.writer.write, staged)
        if finished and self.announced is not None:
            self.announced()
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

    async def _isolate(self, pairs: list[tuple[TopicPartition, Record]], error: Exception) -> None:
        """Write records (in event-time order) that PostgreSQL refused together, with
        ``error``: in halves, in order, down to the single records it refuses, which are
        quarantined."""
        if len(pairs) == 1:
            await self._quarantine(*pairs[0], error)
            return
        half = len(pairs) // 2
        for part in (pairs[:half], pairs[half:]):
            changes = self._fold(_grouped(part), [])  # (letters went with the batch)
            try:
                await self._store(self.writer.stage(changes), changes)
            except Exception as exc:
                if not refused_as_data(exc):
                    raise
                await self._isolate(part, exc)

    async def _quarantine(self, tp: TopicPartition, record: Record, error: Exception) -> None:
        """A record PostgreSQL refuses: dead-lettered, and its item, if it names one,
        failed (so that its job can finish); its position is stored past it."""
        message = safe_text(f"{type(error).__name__}: {error}".strip())
        self.counts[UNPROJECTABLE] += 1
        PROJECTOR_QUARANTINED.labels(UNPROJECTABLE).inc()
        log.error(
            "quarantined %s[%d]@%d, which PostgreSQL refuses: %s",
            tp.topic,
            tp.partition,
            record.offset,
            message,
        )
        await self._dead_letter([dead_letter(record, UNPROJECTABLE, message)])
        changes = Changes()
        address = self._address_of(record)
        if address is not None:
            changes.outcome(
                address[0],
                address[1],
                "failed",
                0,
                0.0,
                _record_time(record),
                error_code=UNPROJECTABLE,
                error_message=safe_text(
                    f"{tp.topic}[{tp.partition}]@{record.offset} could not be stored: {message}"
                )[:4096],
            )
        changes.advance(tp.topic, tp.partition, record.offset)
        try:
            await self._store(self.writer.stage(changes), changes)
        except Exception as exc:
            if not refused_as_data(exc):
                raise
            changes.items.clear()  # even its failure is refused: only move past it
            await self._store(self.writer.stage(changes), changes)

    def _address_of(self, record: Record) -> tuple[Any, int] | None:
        """The (job id, item index) an items or outcomes record names, if it does."""
        topics = self.settings.topics
        if topics.job_type_of_items_topic(record.topic) is None and not (
            topics.is_outcomes_topic(record.topic)
        ):
            return None
        return item_address(address_fields(record.value or b""))

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        if self.dead_letters is not None and letters:
            await self.dead_letters(letters)

    def _read_fast(self, topic: str) -> Callable[[Changes, bytes], None] | None:
        """The one-pass reader of what a topic carries in bulk (items, outcomes)."""
        if self.settings.topics.is_outcomes_topic(topic):
            return _fold_outcome
        if self.settings.topics.job_type_of_items_topic(topic) is not None:
            return _fold_submitted
        return None  # the jobs topic: a few events a job, decoded the long way
