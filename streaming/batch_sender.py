"""Batched, acknowledged publishing (the workers' outcomes and dead letters, the API's
submissions).

``producer.send()`` runs a lot of Python per message in aiokafka (a future, a partitioner
call, the accumulator's bookkeeping); appending to a batch builder per partition and
submitting whole batches with ``send_batch`` runs a fraction of it. Every
message carries an acknowledgement callback for the record it answers; when Kafka
acknowledges the batch, the callbacks run, and only then can those offsets be committed.

aiokafka accepts one undrained batch per partition at a time, so appenders never submit:
they fill the partition's open batch, and one sender task per partition submits closed
batches in order. A bounded queue of closed batches gives back-pressure.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.structs import TopicPartition

from streaming.partitioning import partition_index

log = logging.getLogger(__name__)

Ack = Callable[[], None]
MAX_CLOSED_PER_PARTITION = 8
LARGE_MESSAGE = 64 * 1024
KEYS_REMEMBERED = 4096


class DeliveryFailed(Exception):
    """Kafka did not acknowledge a batch. The sender stays failed: make a new one (the
    worker restarts from its committed offsets; the API answers 503 and starts afresh)."""


class MessageTooLarge(Exception):
    """One message is larger than the producer sends: only its caller fails, the sender
    and every other message go on."""


@dataclass
class _Batch:
    builder: Any
    acks: list[Ack] = field(default_factory=list)
    opened: float = field(default_factory=time.monotonic)


class _PartitionOut:
    def __init__(self, tp: TopicPartition, producer: AIOKafkaProducer):
        self.tp = tp
        self.producer = producer
        self.open: _Batch | None = None
        self.closed: deque[_Batch] = deque()
        self.wakeup = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.full = False  # ``not room.is_set()``, read per message without a call
        self.unacked = 0  # batches closed or submitted but not yet acknowledged
        self.all_acked = asyncio.Event()
        self.all_acked.set()
        self.task: asyncio.Task[None] | None = None

    def make_room(self) -> None:
        self.full = False
        self.room.set()

    def new_batch(self) -> _Batch:
        self.open = _Batch(self.producer.create_batch())
        return self.open

    def close_open(self) -> None:
        batch, self.open = self.open, None
        if batch is None or not batch.acks:
            return
        batch.builder.close()
        self.closed.append(batch)
        self.unacked += 1
        self.all_acked.clear()
        if len(self.closed) >= MAX_CLOSED_PER_PARTITION:
            self.full = True
            self.room.clear()
        self.wakeup.set()


class BatchSender:
    def __init__(self, producer: AIOKafkaProducer, *, linger_s: float = 0.005):
        self.producer = producer
        self.linger_s = linger_s
        self._partitions: dict[str, list[TopicPartition]] = {}  # by topic, in order
        self._outs: dict[TopicPartition, _PartitionOut] = {}
        # where recent keys go (a worker's outcomes share their job's key): no hash per message
        self._by_key: dict[tuple[str, bytes], _PartitionOut] = {}
        self._failure: BaseException | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def start(self, topics: list[str]) -> None:
        for topic in topics:
            numbers = sorted(await self.producer.partitions_for(topic))
            self._partitions[topic] = [TopicPartition(topic, p) for p in numbers]
        self._flusher = asyncio.create_task(self._flush_periodically())

    def check(self) -> None:
        if self._failure is not None:
            raise DeliveryFailed(repr(self._failure)) from self._failure

    async def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        ack: Ack,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Add a message to its partition's open batch, waiting while that partition has
        ``MAX_CLOSED_PER_PARTITION`` batches queued (back-pressure)."""
        if self.append_nowait(topic, key, value, ack, headers):
            return
        out = self._out(topic, key)
        while not out.room.is_set():
            await out.room.wait()
            self.check()
        if value is not None and len(value) > LARGE_MESSAGE:
            await self._send_large(out.tp, key, value, ack, headers)
            return
        self._add(out, key, value, ack, headers)

    def append_nowait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        ack: Ack,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> bool:
        """``append`` without a coroutine (a hot path's loop over many messages): True when
        added; False, adding nothing, when it would have to wait (then ``await append``)."""
        if self._failure is not None:
            self.check()
        out = self._out(topic, key)
        if out.full or (value is not None and len(value) > LARGE_MESSAGE):
            return False
        self._add(out, key, value, ack, headers)
        return True

    def _out(self, topic: str, key: bytes | None) -> _PartitionOut:
        if key is not None:
            out = self._by_key.get((topic, key))
            if out is not None:
                return out
        partitions = self._partitions[topic]
        if key is None:  # as the default partitioner does
            tp = random.choice(partitions)
        else:
            tp = partitions[partition_index(key, len(partitions))]
        out = self._outs.get(tp)
        if out is None:
            out = self._outs[tp] = _PartitionOut(tp, self.producer)
            out.task = asyncio.create_task(self._send_loop(out))
        if key is not None:
            if len(self._by_key) >= KEYS_REMEMBERED:
                self._by_key.clear()
            self._by_key[(topic, key)] = out
        return out

    def _add(
        self,
        out: _PartitionOut,
        key: bytes | None,
        value: bytes | None,
        ack: Ack,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        batch = out.open or out.new_batch()
        hdrs = headers or []
        if batch.builder.append(key=key, value=value, timestamp=None, headers=hdrs) is None:
            out.close_open()
            batch = out.new_batch()
            if batch.builder.append(key=key, value=value, timestamp=None, headers=hdrs) is None:
                raise MessageTooLarge(
                    f"a message of {len(value or b'')} bytes does not fit in an empty batch"
                )
        batch.acks.append(ack)

    async def _send_large(
        self,
        tp: TopicPartition,
        key: bytes | None,
        value: bytes,
        ack: Ack,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        """A message too big for a batch (a dead-lettered oversized event) goes on its own."""
        out = self._outs[tp]
        out.unacked += 1
        out.all_acked.clear()
        try:
            future = await self.producer.send(
                tp.topic, value=value, key=key, partition=tp.partition, headers=headers
            )
        except MessageSizeTooLargeError as exc:  # refused before anything was sent
            out.unacked -= 1
            if out.unacked == 0:
                out.all_acked.set()
            raise MessageTooLarge(repr(exc)) from exc
        except Exception as exc:
            self._fail(out, exc)
            raise DeliveryFailed(repr(exc)) from exc
        batch = _Batch(None, [ack])
        future.add_done_callback(lambda fut: self._delivered(out, batch, fut))

    async def flush(self) -> None:
        """Submit every open batch and wait until every batch is acknowledged."""
        for out in self._outs.values():
            out.close_open()
        for out in list(self._outs.values()):
            while not out.all_acked.is_set():
                self.check()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(out.all_acked.wait(), 0.1)
        self.check()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        with contextlib.suppress(DeliveryFailed):
            await self.flush()
        for out in self._outs.values():
            if out.task is not None:
                out.task.cancel()
        await asyncio.gather(
            *(o.task for o in self._outs.values() if o.task), return_exceptions=True
        )

    async def _send_loop(self, out: _PartitionOut) -> None:
        while True:
            while not out.closed:
                out.wakeup.clear()
                await out.wakeup.wait()
            batch = out.closed.popleft()
            if len(out.closed) < MAX_CLOSED_PER_PARTITION:
                out.make_room()
            try:
                future = await self.producer.send_batch(
                    batch.builder, out.tp.topic, partition=out.tp.partition
                )
            except Exception as exc:
                self._fail(out, exc)
                return
            future.add_done_callback(lambda fut, b=batch: self._delivered(out, b, fut))

    def _delivered(self, out: _PartitionOut, batch: _Batch, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self._fail(out, fut.exception() or asyncio.CancelledError())
            return
        for ack in batch.acks:
            ack()
        out.unacked -= 1
        if out.unacked == 0:
            out.all_acked.set()

    def _fail(self, out: _PartitionOut, exc: BaseException) -> None:
        if self._failure is None:
            log.error("a batch to %s was not acknowledged: %r", out.tp, exc)
            self._failure = exc
        out.make_room()  # wake appenders so that they see the failure

    async def _flush_periodically(self) -> None:
        """Close open batches that have lingered, except where closed batches are still
        waiting for the sender: there the open batch would not go out any sooner, and it
        goes on filling (fewer, fuller batches while Kafka is the bottleneck, as Kafka's
        own producer does)."""
        while True:
            await asyncio.sleep(self.linger_s)
            now = time.monotonic()
            for out in self._outs.values():
                if (
                    out.open is not None
                    and not out.closed
                    and now - out.open.opened >= self.linger_s
                ):
                    out.close_open()
