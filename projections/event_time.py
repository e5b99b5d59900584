"""Batches of records in event-time order across partitions.

Kafka orders records within a partition only, and aiokafka hands fetched records out a
partition at a time. Folding a backlog that way (a replay, or a projector catching up) writes
each item twice: its submission, from an items topic, in one batch as a pending row; its
outcome, from the outcomes topic, in a later batch as an update of that row, which costs
PostgreSQL more than the insert did. Taken in event-time order instead
(the records' timestamps, merged across partitions, as Kafka Streams does), an item's
submission and its outcome mostly land in the same batch, and are written as one terminal
row.

Each partition has a lookahead of records drawn from the consumer. A batch takes, from every
partition, the records stamped up to the earliest "frontier": the last stamp held of each
partition that has more records behind it in Kafka. A partition that is caught up does not
hold the others back, so a live projector at the head of its topics folds everything it has
at once, as before.

Records of ``urgent`` topics (the jobs topic and the interactive lane's) are not ordered in
event time at all: each batch takes all that is held of them first, and they hold nobody
back, so a small interactive job is folded at once even while a backlog of bulk records
older than it is being folded.

Stamps order batches and nothing else: the fold is correct in any order. A stamp is the
record's timestamp, capped at the time it was read (a publisher with a clock ahead cannot
keep its records back for longer than the others' lag), and made non-decreasing within its
partition (so that a batch always takes a prefix of each partition, in offset order).
"""

import bisect
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord, TopicPartition

STARVING_WAIT_MS = 50

Batch = dict[TopicPartition, list[ConsumerRecord[Any, Any]]]


@dataclass(slots=True)
class _Lookahead:
    records: list[ConsumerRecord[Any, Any]] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)  # non-decreasing, one per record

    def add(self, records: list[ConsumerRecord[Any, Any]], now_ms: int) -> None:
        capped = [r.timestamp if r.timestamp < now_ms else now_ms for r in records]
        stamps = accumulate(capped, max, initial=self.stamps[-1] if self.stamps else -1)
        next(stamps)  # the initial value
        self.records += records
        self.stamps += stamps

    def take(self, count: int) -> list[ConsumerRecord[Any, Any]]:
        taken = self.records[:count]
        del self.records[:count]
        del self.stamps[:count]
        return taken


class EventTimeBatches:
    """Draws records from ``consumer`` and hands them out in batches of at most
    ``max_batch``, in event-time order across partitions.

    ``ends`` (a replay's targets): the offset where each partition stops; a record read from
    there on is put back (the consumer seeks back to the end), for the next pass to fold.
    Call ``forget`` whenever the consumer seeks: the records held were read from the old
    positions.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        max_batch: int,
        *,
        lookahead: int | None = None,
        ends: Mapping[TopicPartition, int] | None = None,
        urgent: Callable[[str], bool] = lambda topic: False,
    ):
        self.consumer = consumer
        self.max_batch = max_batch
        self.urgent = urgent
        self.lookahead = lookahead or max(1, max_batch // 2)
        self.ends = dict(ends) if ends is not None else None
        self._held: dict[TopicPartition, _Lookahead] = {}

    def forget(self, tp: TopicPartition) -> None:
        """Drop the records held of ``tp``. Call it just before the consumer seeks in it,
        with no ``await`` in between: records drawn after the seek are from the new
        position, and must be kept."""
        self._held.pop(tp, None)

    def held(self) -> int:
        return sum(len(h.records) for h in self._held.values())

    async def position(self, tp: TopicPartition) -> int:
        """The offset of the next record of ``tp`` to hand out (the consumer's own position
        is ahead of it by the records held)."""
        held = self._held.get(tp)
        if held is not None and held.records:
            return int(held.records[0].offset)
        return int(await self.consumer.position(tp))

    async def next_batch(
        self, timeout_ms: int, partitions: Iterable[TopicPartition] | None = None
    ) -> Batch:
        """The next batch from ``partitions`` (default: all assigned). Waits up to
        ``timeout_ms`` when nothing is held, and up to ``STARVING_WAIT_MS`` for a partition
        known to have records that the consumer has not fetched yet (without them, the
        others would run ahead of it in time)."""
        wanted = set(partitions) if partitions is not None else self.consumer.assignment()
        for tp in list(self._held):
            if tp not in wanted:
                del self._held[tp]
        try:
            await self._top_up(wanted)
            starving = [tp for tp in wanted if await self._starving(tp)]
            if starving:
                await self._fetch(starving, STARVING_WAIT_MS)
            if not self.held():
                await self._fetch(wanted, timeout_ms)
            await self._top_up(wanted)
        except IllegalStateError:
            return {}  # reassigned meanwhile: what is held of revoked partitions goes next call
        return self._cut()

    async def _fetch(self, partitions: Collection[TopicPartition], timeout_ms: int) -> None:
        self._add(
            await self.consumer.getmany(
                *partitions, timeout_ms=timeout_ms, max_records=self.lookahead
            )
        )

    async def _starving(self, tp: TopicPartition) -> bool:
        """Nothing held of ``tp``, though it has records past its position."""
        held = self._held.get(tp)
        if held is not None and held.records:
            return False
        return self._more_after(tp, await self.consumer.position(tp))

    def _more_after(self, tp: TopicPartition, offset: int) -> bool:
        """Whether ``tp`` is known to have records from ``offset`` on."""
        if self.ends is not None:
            return offset < self.ends.get(tp, 0)
        highwater = self.consumer.highwater(tp)
        return highwater is None or offset < highwater

    async def _top_up(self, partitions: Iterable[TopicPartition]) -> None:
        """Fill each partition's lookahead from what the consumer has already fetched."""
        for tp in partitions:
            held = self._held.get(tp)
            room = self.lookahead - (len(held.records) if held is not None else 0)
            if room > 0:
                self._add(await self.consumer.getmany(tp, timeout_ms=0, max_records=room))

    def _add(self, fetched: Batch) -> None:
        now_ms = int(time.time() * 1000)
        for tp, records in fetched.items():
            if self.ends is not None:
                end = self.ends.get(tp, 0)
                if records and records[-1].offset >= end:
                    # Not dropped: read again from ``end`` by whoever reads on.
                    records = [r for r in records if r.offset < end]
                    self.consumer.seek(tp, end)
            if records:
                self._held.setdefault(tp, _Lookahead()).add(records, now_ms)

    def _behind(self, tp: TopicPartition, held: _Lookahead) -> bool:
        """Whether records of ``tp`` past those held are known to exist."""
        return self._more_after(tp, held.records[-1].offset + 1)

    def _cut(self) -> Batch:
        held: dict[TopicPartition, _Lookahead] = {}
        urgent: dict[TopicPartition, _Lookahead] = {}
        for tp, h in self._held.items():
            if h.records:
                (urgent if self.urgent(tp.topic) else held)[tp] = h
        batch: Batch = {}
        room = self.max_batch
        for tp, h in urgent.items():  # first, whatever their stamps
            if room > 0:
                batch[tp] = h.take(min(room, len(h.records)))
                room -= len(batch[tp])
        if not held or room <= 0:
            return batch
        frontiers = [h.stamps[-1] for tp, h in held.items() if self._behind(tp, h)]
        until = min(frontiers) if frontiers else max(h.stamps[-1] for h in held.values())
        counts = self._counts(held, until)
        if sum(counts.values()) > room:
            counts = self._capped(held, until, room)
        batch.update({tp: held[tp].take(n) for tp, n in counts.items() if n})
        return batch

    @staticmethod
    def _counts(held: dict[TopicPartition, _Lookahead], until: int) -> dict[TopicPartition, int]:
        return {tp: bisect.bisect_right(h.stamps, until) for tp, h in held.items()}

    def _capped(
        self, held: dict[TopicPartition, _Lookahead], until: int, room: int
    ) -> dict[TopicPartition, int]:
        """The most records up to the latest stamp whose records fit in ``room``; then, of
        the records stamped just after it, as many as still fit."""
        low = min(h.stamps[0] for h in held.values()) - 1  # nothing is stamped <= low
        high = until  # more than ``room`` records are stamped <= high
        while high - low > 1:
            middle = (low + high) // 2
            if sum(self._counts(held, middle).values()) <= room:
                low = middle
            else:
                high = middle
        counts = self._counts(held, low)
        room -= sum(counts.values())
        for tp, h in held.items():  # records stamped ``high``: a share of them
            if room <= 0:
                break
            extra = min(room, bisect.bisect_right(h.stamps, high) - counts[tp])
            counts[tp] += extra
            room -= extra
        return counts
