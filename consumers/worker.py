"""The worker of one job type's consumer group: fetch, dispatch by key, process, publish,
commit what is acknowledged.

- Records with the same key (in one partition) are processed in offset order; different
  keys run concurrently, up to ``worker_concurrency`` at once. A record is processed in
  the fetch loop as far as it goes without waiting, in phases over a fetched batch (read
  every record; then a chunk at a time, process, then publish the outcomes, the fetch loop
  waiting for room in the sink); what has to wait (a handler on I/O, a retry's backoff)
  goes on in a runner task (``consumers.lanes``).
- Every record ends in exactly one outcome event or a dead letter (and, when a dead letter
  still names its item, a ``malformed_event`` failure for it), published in batches. What
  goes wrong is treated by one policy: ``consumers.failures``.
- A partition's offset is committed only up to the first record whose outcome Kafka has not
  yet acknowledged.
- On revocation, queued records of the revoked partitions are dropped (never processed
  after revocation), in-flight ones finish within the grace period, and what is acknowledged
  is committed before the partitions move on. SIGTERM does the same for every partition.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Coroutine
from functools import partial
from typing import Any, TypeAlias, cast
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from consumers.cancellations import CancellationWatcher
from consumers.deadlines import Deadlines
from consumers.failures import INTERNAL_ERROR, WorkerBroken, bug_message
from consumers.item_reader import ItemReader, UnexpectedEvent
from consumers.lanes import YIELD_EVERY, KeyedDispatcher
from consumers.metrics import DEAD_LETTERED, series_of
from consumers.offsets import PartitionOffsets
from consumers.outage import Outage
from consumers.processing import (
    Outcome,
    RetryPolicy,
    SubmittedItem,
    cancelled,
    failed,
    process_item_now,
)
from consumers.settings import WorkerSettings
from events.codec import EventDecodeError, address_fields
from events.ids import job_id_text
from jobtypes.contract import Handler
from streaming.batch_sender import BatchSender, DeliveryFailed
from streaming.dead_letters import dead_letter, item_address

log = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


# A record, its partition's offsets tracker (while the partition is assigned here), and the
# item read from it or why it could not be. A plain tuple: one is made per record, and a
# named tuple's constructor runs Python code.
Work: TypeAlias = tuple[Record, PartitionOffsets, SubmittedItem | Exception]


@functools.lru_cache(maxsize=4096)
def _job_key(job_id: str) -> bytes:
    return job_id.encode()


class _JointAck:
    """Acknowledges a record once all of the messages it produced are acknowledged."""

    __slots__ = ("_done", "_remaining")

    def __init__(self, done: Any, count: int):
        self._done, self._remaining = done, count

    def __call__(self) -> None:
        self._remaining -= 1
        if self._remaining == 0:
            self._done()


class Worker:
    def __init__(
        self,
        settings: WorkerSettings,
        handler: Handler,
        consumer: AIOKafkaConsumer,
        sink: BatchSender,
        cancellations: CancellationWatcher | None = None,
    ):
        self.settings = settings
        self.handler = handler
        self.consumer = consumer
        self.sink = sink
        self.cancellations = cancellations
        self.policy = RetryPolicy(
            settings.worker_max_attempts,
            settings.worker_backoff_base_s,
            settings.worker_backoff_max_s,
        )
        self._outcome_topics: dict[str, str] = {}  # by items topic: its lane's
        self.dlq_topic = settings.topics.dlq
        self.offsets: dict[TopicPartition, PartitionOffsets] = {}
        self.revoked: set[TopicPartition] = set()
        self.series = series_of(handler.job_type)
        self._outcome_counters = {
            kind: self.series.outcome(kind)
            for kind in ("ItemSucceeded", "ItemFailed", "ItemCancelled")
        }
        self.dead_lettered = 0
        self.reader = ItemReader(handler, settings.worker_max_event_bytes)
        self.broken: BaseException | None = None  # a bug it could not settle
        self.dispatcher: KeyedDispatcher[Work] = KeyedDispatcher(
            self._start,
            on_bug=self.break_down,
            concurrency=settings.worker_concurrency,
            max_queued=settings.worker_max_batch * 2,
        )
        self._last_commit = 0.0
        self.deadlines = Deadlines()
        self._releasing = asyncio.Lock()
        self.outage = Outage(handler.job_type)
        self._paused_for: list[str] = []  # the dependencies fetching is paused for

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.deadlines.start()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                partitions = await self._choose_partitions()
                fetch = asyncio.ensure_future(
                    self.consumer.getmany(
                        *partitions, timeout_ms=200, max_records=self.settings.worker_max_batch
                    )
                )
                await asyncio.wait([fetch, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    break
                for tp, records in fetch.result().items():
                    await self._dispatch(tp, records)
                self.sink.check()
                if self.broken is not None:
                    raise WorkerBroken(repr(self.broken)) from self.broken
                await self._maybe_commit()
        finally:
            stopping.cancel()
            await self.shutdown()

    async def _choose_partitions(self) -> list[TopicPartition]:
        """The partitions to take fetched records of next (none listed: all). While an item
        waits for an unavailable dependency, every partition is paused (the loop keeps
        polling, so the worker stays in its group). While the interactive lane has records
        not yet taken, only its partitions: the bulk lane's records wait in the consumer's
        buffer (not paused: pausing would drop what was fetched of them)."""
        assigned = self.consumer.assignment()
        paused = self.consumer.paused()
        if self._dependencies_down():
            if set(assigned) - paused:
                self.consumer.pause(*(set(assigned) - paused))
            return []
        if paused:
            self.consumer.resume(*paused)
        if await self._interactive_waiting(assigned):
            return [tp for tp in assigned if self._interactive(tp.topic)]
        return []

    def _dependencies_down(self) -> list[str]:
        """The dependencies items wait for now; says so when that changes."""
        down = self.outage.down
        if down and down != self._paused_for:
            log.warning(
                "pausing: %s unavailable; %d items wait for it, attempts not spent",
                ", ".join(down),
                sum(self.outage.waiting.values()),
            )
        elif not down and self._paused_for:
            log.warning("resuming: %s answers again", ", ".join(self._paused_for))
        self._paused_for = down
        return down

    async def _interactive_waiting(self, assigned: set[TopicPartition]) -> bool:
        """Whether an interactive partition has records past what was taken of it."""
        for tp in assigned:
            if self._interactive(tp.topic):
                end = self.consumer.highwater(tp)
                if end is not None and end > await self.consumer.position(tp):
                    return True
        return False

    def _interactive(self, topic: str) -> bool:
        return self.settings.topics.lane_of(topic) == "interactive"

    async def _dispatch(self, tp: TopicPartition, records: list[Record]) -> None:
        if tp in self.revoked or tp not in self.consumer.assignment():
            return  # fetched before a rebalance: the partition's new owner handles these
        offsets = self.offsets.get(tp)
        if offsets is None:
            offsets = self.offsets[tp] = PartitionOffsets()
        offsets.track_all([record.offset for record in records])
        # In phases, each a loop of one piece of code (a piece alone in a loop runs faster
        # than interleaved with the others: its code and data stay warm): read every record;
        # then, a chunk at a time, process the records that can start now, then publish
        # their outcomes.
        items = self.reader.read_all([record.value for record in records])
        dispatcher, process = self.dispatcher, self._process
        urgent = self._interactive(tp.topic)  # its queued records go before the bulk lane's
        free, submit_nowait = dispatcher.free, dispatcher.submit_nowait
        for first in range(0, len(records), YIELD_EVERY):
            last = first + YIELD_EVERY
            done: list[tuple[Work, Outcome]] = []
            for record, item in zip(records[first:last], items[first:last], strict=True):
                lane = (tp, record.key if record.key is not None else record.offset)
                work = (record, offsets, item)
                if free(lane):
                    outcome = process(work)
                    if type(outcome) is Outcome:
                        done.append((work, outcome))
                    elif outcome is not None:  # it waits: a runner carries it on
                        dispatcher.adopt(lane, outcome)  # type: ignore[arg-type]
                elif not submit_nowait(lane, work, urgent):  # queued behind its lane, or full:
                    await self._publish(offsets, done)
                    done = []
                    await dispatcher.submit(lane, work, urgent)
            await self._publish(offsets, done)
            await asyncio.sleep(0)  # let the sender and the runners run
            if offsets.released:
                return  # revoked meanwhile: the partition's new owner has the rest

    async def _maybe_commit(self) -> None:
        now = time.monotonic()
        if now - self._last_commit < self.settings.worker_commit_interval_s:
            return
        self._last_commit = now
        await self.commit([tp for tp in self.offsets if tp not in self.revoked])

    async def commit(self, partitions: list[TopicPartition]) -> None:
        trackers = {tp: self.offsets[tp] for tp in partitions if tp in self.offsets}
        positions = {}
        for tp, offsets in trackers.items():
            position = offsets.to_commit()
            if position is not None:
                positions[tp] = position
        if not positions:
            return
        try:
            await self.consumer.commit(positions)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            # Lost the partitions in a rebalance: their new owner redoes what was not
            # committed; outcome ids are deterministic, so repeats are recognisable.
            log.warning("offset commit failed: %s", exc)
            return
        for tp, position in positions.items():
            trackers[tp].committed(position)

    # --- one record ---------------------------------------------------------------------------

    def _process(self, work: Work) -> Outcome | Coroutine[Any, Any, None] | None:
        """Process a record as far as it goes without waiting: its outcome, to publish; or
        what is left of it, to await (publishing what it ends in); or None, nothing to do
        (its partition was released, or it could not be finished)."""
        record, offsets, item = work
        if offsets.released:  # (even if assigned again since): its new owner has it
            return None
        try:
            if type(item) is not SubmittedItem:  # (cheaper than an isinstance of a union)
                if isinstance(item, EventDecodeError):
                    address = item_address(item.payload)
                    rest = self._reject(work, item.reason, item.message, address)
                elif isinstance(item, UnexpectedEvent):
                    message = f"{item} on {record.topic}"
                    rest = self._reject(work, "unexpected_event", message, None)
                else:
                    raise cast(Exception, item)  # a bug in reading: settled below
                return self._rest(work, rest)
            job = item.job_text
            if self.cancellations is not None and self.cancellations.is_cancelled(job):
                return cancelled(job, item.item_index)
            outcome = process_item_now(
                self.handler, item, self.policy, self.deadlines, self.series, self.outage
            )
            if type(outcome) is not Outcome:  # the handler waits, or is retried
                later: Coroutine[Any, Any, Outcome] = outcome  # type: ignore[assignment]
                return self._rest(work, self._emit_later(work, job, later))
            return outcome
        except Exception as exc:
            return self._rest(work, self._settle(work, exc))

    def _start(self, work: Work) -> Coroutine[Any, Any, None] | None:
        """The dispatcher's start of a queued record: ``_process``, then its outcome handed
        to the sink; None when that is done, else what is left of it, to await."""
        outcome = self._process(work)
        if type(outcome) is not Outcome:
            return outcome  # type: ignore[return-value]
        record, offsets, item = work
        job: str = item.job_text  # type: ignore[union-attr]  # (an outcome: an item)
        ack = partial(offsets.ack, record.offset)
        try:
            topic = self._outcomes_of(record.topic)
            if self._emit_nowait(topic, job, outcome, ack):
                return None
        except Exception as exc:
            return self._rest(work, self._settle(work, exc))
        return self._rest(work, self._emit(topic, job, outcome, ack))

    async def _publish(self, offsets: PartitionOffsets, done: list[tuple[Work, Outcome]]) -> None:
        """Hand the outcomes of records processed in the fetch loop to the sink, in order,
        waiting for room when need be (they count as running meanwhile)."""
        if not done:
            return
        offsets.running += len(done)
        try:
            for (record, _, item), outcome in done:
                job: str = item.job_text  # type: ignore[union-attr]  # (an outcome: an item)
                ack = partial(offsets.ack, record.offset)
                try:
                    topic = self._outcomes_of(record.topic)
                    if not self._emit_nowait(topic, job, outcome, ack):
                        await self._emit(topic, job, outcome, ack)
                except Exception as exc:
                    await self._settle((record, offsets, item), exc)
        finally:
            offsets.running -= len(done)

    def _rest(self, work: Work, rest: Awaitable[None]) -> Coroutine[Any, Any, None]:
        """What is left of a record, counted as running from now until it is done."""
        work[1].running += 1
        return self._finish(work, rest)

    async def _finish(self, work: Work, rest: Awaitable[None]) -> None:
        try:
            await rest
        except Exception as exc:
            await self._settle(work, exc)
        finally:
            work[1].running -= 1

    async def _emit_later(self, work: Work, job_id: str, outcome: Awaitable[Outcome]) -> None:
        record, offsets, _ = work
        topic = self._outcomes_of(record.topic)
        await self._emit(topic, job_id, await outcome, partial(offsets.ack, record.offset))

    async def _settle(self, work: Work, exc: Exception) -> None:
        """A record that raised outside its handler (``consumers.failures``, policies 2 and
        3): Kafka not acknowledging is left to the loop (its session starts again); a bug
        fails the record's item with ``internal_error``, or breaks the worker if even that
        cannot be published."""
        record, offsets, item = work
        if isinstance(exc, DeliveryFailed) or offsets.released:
            return  # unacknowledged: delivered again (to this worker's next session, or
            # to the partition's new owner)
        log.error(
            "a bug on %s[%d]@%d; its item fails with %s",
            record.topic,
            record.partition,
            record.offset,
            INTERNAL_ERROR,
            exc_info=exc,
        )
        ack = partial(offsets.ack, record.offset)
        try:
            if type(item) is SubmittedItem:
                address: tuple[str, int] | None = (item.job_text, item.item_index)
            else:
                named = item_address(address_fields(record.value or b""))
                address = None if named is None else (job_id_text(named[0]), named[1])
            if address is None:
                await self._dead_letter(record, INTERNAL_ERROR, bug_message(exc), ack)
            else:
                job, index = address
                outcome = failed(job, index, INTERNAL_ERROR, bug_message(exc), attempts=0)
                await self._emit(self._outcomes_of(record.topic), job, outcome, ack)
        except Exception as again:
            if not isinstance(again, DeliveryFailed):
                self.break_down(again)

    def break_down(self, exc: BaseException) -> None:
        """Stop the worker for a bug it cannot settle: ``run`` raises ``WorkerBroken``."""
        log.critical("the worker cannot go on: %r", exc, exc_info=exc)
        if self.broken is None:
            self.broken = exc

    async def _reject(
        self, work: Work, reason: str, message: str, address: tuple[UUID, int] | None
    ) -> None:
        """Dead-letter a record; when it still names its item, fail the item too, so that
        its job can finish."""
        record, offsets, _ = work
        ack = partial(offsets.ack, record.offset)
        if address is None:
            await self._dead_letter(record, reason, message, ack)
            return
        joint = _JointAck(ack, 2)
        await self._dead_letter(record, reason, message, joint)
        job, index = job_id_text(address[0]), address[1]
        outcome = failed(job, index, "malformed_event", f"{reason}: {message}", attempts=0)
        await self._emit(self._outcomes_of(record.topic), job, outcome, joint)

    def _outcomes_of(self, items_topic: str) -> str:
        """The outcomes topic of an items topic's lane."""
        topic = self._outcome_topics.get(items_topic)
        if topic is None:
            topics = self.settings.topics
            topic = self._outcome_topics[items_topic] = topics.outcomes_of(
                topics.lane_of(items_topic)
            )
        return topic

    async def _emit(self, topic: str, job_id: str, outcome: Outcome, ack: Any) -> None:
        """Publish an outcome (waiting for room in the sink if need be)."""
        if not self._emit_nowait(topic, job_id, outcome, ack):
            self._count(outcome)
            await self.sink.append(topic, _job_key(job_id), outcome.value, ack)

    def _emit_nowait(self, topic: str, job_id: str, outcome: Outcome, ack: Any) -> bool:
        """``_emit`` without a coroutine: False, publishing nothing, when it would wait."""
        if not self.sink.append_nowait(topic, _job_key(job_id), outcome.value, ack):
            return False
        self._outcome_counters[outcome[0]].value += 1  # self._count(outcome), inline
        return True

    def _count(self, outcome: Outcome) -> None:
        self._outcome_counters[outcome[0]].value += 1

    @property
    def counts(self) -> dict[str, int]:
        """Outcomes and dead letters so far (for the log line at exit)."""
        counts = {kind: counter.value for kind, counter in self._outcome_counters.items()}
        return {**counts, "dead_lettered": self.dead_lettered}

    async def _dead_letter(self, record: Record, reason: str, message: str, ack: Any) -> None:
        self.dead_lettered += 1
        DEAD_LETTERED.labels(self.handler.job_type, reason).inc()
        log.warning(
            "dead-lettering %s[%d]@%d: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
            message,
        )
        letter = dead_letter(record, reason, message)
        await self.sink.append(self.dlq_topic, letter.key, letter.value, ack, letter.headers)

    # --- rebalance and shutdown -----------------------------------------------------------------

    async def release(self, partitions: list[TopicPartition]) -> None:
        """Stop working on these partitions: drop what is queued, let in-flight records
        finish within the grace period, commit what is acknowledged."""
        async with self._releasing:  # a rebalance and a shutdown may overlap
            await self._release(partitions)

    async def _release(self, partitions: list[TopicPartition]) -> None:
        self.revoked.update(partitions)
        released = [self.offsets[tp] for tp in partitions if tp in self.offsets]
        for offsets in released:
            offsets.released = True  # queued records of these partitions are dropped
        deadline = time.monotonic() + self.settings.worker_shutdown_grace_s
        while any(offsets.running for offsets in released) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(self.sink.flush(), max(0.1, deadline - time.monotonic()))
        except Exception as exc:
            log.warning("outcomes not all acknowledged before release: %r", exc)
        await self.commit(partitions)
        for tp in partitions:
            self.offsets.pop(tp, None)

    async def shutdown(self) -> None:
        await self.release(list(self.offsets))
        await self.dispatcher.stop()
        await self.deadlines.stop()


class ReleaseOnRevoke(ConsumerRebalanceListener):
    def __init__(self, worker: Worker):
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            await self.worker.release(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self.worker.revoked.discard(tp)
