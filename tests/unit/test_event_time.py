"""Batches in event-time order across partitions (``projections.event_time``), against a
consumer that serves in-memory partitions."""

import itertools
import time

from aiokafka.structs import ConsumerRecord, TopicPartition

from projections.event_time import EventTimeBatches

A, B, C = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)


def record(tp: TopicPartition, offset: int, stamp: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(tp.topic, tp.partition, offset, stamp, 0, None, b"", None, 0, 0, [])


class Consumer:
    """Partitions held in memory. ``fetched``: how many records of each partition the
    consumer has fetched so far (default: all); a wait (timeout > 0) fetches the rest."""

    def __init__(self, stamps: dict[TopicPartition, list[int]], fetched=None):  # type: ignore[no-untyped-def]
        self.log = {tp: [record(tp, n, s) for n, s in enumerate(ss)] for tp, ss in stamps.items()}
        self.positions = dict.fromkeys(stamps, 0)
        self.fetched = dict(fetched) if fetched else {tp: len(r) for tp, r in self.log.items()}
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.log)

    def highwater(self, tp: TopicPartition) -> int:
        return len(self.log[tp])

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))
        self.positions[tp] = offset

    async def getmany(self, *partitions, timeout_ms=0, max_records=None):  # type: ignore[no-untyped-def]
        if timeout_ms:
            self.fetched = {tp: len(r) for tp, r in self.log.items()}
        out = {}
        room = max_records if max_records is not None else 10**9
        for tp in partitions or self.log:
            start = self.positions[tp]
            records = self.log[tp][start : min(self.fetched[tp], start + room)]
            if records:
                out[tp] = records
                self.positions[tp] += len(records)
                room -= len(records)
        return out


async def drain(batches: EventTimeBatches, **kwargs) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    out: list[dict] = []  # type: ignore[type-arg]
    for _ in range(1000):
        batch = await batches.next_batch(timeout_ms=1, **kwargs)
        if not batch:
            return out
        out.append(batch)
    raise AssertionError("never ran dry")


def offsets(batches: list[dict]) -> dict[TopicPartition, list[int]]:  # type: ignore[type-arg]
    seen: dict[TopicPartition, list[int]] = {}
    for batch in batches:
        for tp, records in batch.items():
            seen.setdefault(tp, []).extend(r.offset for r in records)
    return seen


async def test_partitions_are_merged_in_event_time():
    consumer = Consumer({A: [1, 3, 5, 7, 9, 11], B: [2, 4, 6, 8, 10, 12]})
    got = await drain(EventTimeBatches(consumer, max_batch=4, lookahead=3))  # type: ignore[arg-type]
    stamps = [sorted(r.timestamp for rs in batch.values() for r in rs) for batch in got]
    assert stamps[0] == [1, 2, 3, 4]
    for earlier, later in itertools.pairwise(stamps):
        assert max(earlier) <= min(later)
    assert offsets(got) == {A: list(range(6)), B: list(range(6))}


async def test_a_partition_with_more_in_kafka_holds_back_the_records_stamped_after_it():
    # A has only its first two records fetched, and more behind them; B has everything.
    consumer = Consumer({A: [1, 2, 30, 40], B: list(range(1, 50))}, fetched={A: 2, B: 49})
    batches = EventTimeBatches(consumer, max_batch=1000, lookahead=100)  # type: ignore[arg-type]
    first = await batches.next_batch(timeout_ms=0)
    assert [r.timestamp for r in first[B]] == [1, 2]  # nothing of B after A's frontier
    rest = await drain(batches)
    assert offsets([first, *rest]) == {A: [0, 1, 2, 3], B: list(range(49))}


async def test_urgent_topics_are_taken_first_and_held_back_by_nobody():
    # A (a bulk backlog) has its old records fetched and more behind them; the urgent topic
    # C's records are newer than all of them.
    consumer = Consumer(
        {A: [1, 2, 30, 40], B: list(range(1, 50)), C: [45, 46]}, fetched={A: 2, B: 49, C: 2}
    )
    batches = EventTimeBatches(
        consumer,  # type: ignore[arg-type]
        max_batch=4,
        lookahead=100,
        urgent=lambda topic: topic == C.topic,
    )
    first = await batches.next_batch(timeout_ms=0)
    assert [r.offset for r in first[C]] == [0, 1]  # at once, whatever A's frontier
    assert sum(len(rs) for rs in first.values()) == 4  # within the batch's maximum
    rest_stamps = sorted(r.timestamp for tp in (A, B) for r in first.get(tp, []))
    assert rest_stamps == [1, 1]  # the rest still in event time: the earliest
    rest = await drain(batches)
    assert offsets([first, *rest]) == {A: [0, 1, 2, 3], B: list(range(49)), C: [0, 1]}


async def test_caught_up_partitions_hold_nothing_back():
    consumer = Consumer({A: [100, 101], B: [1, 2, 3]})
    batch = await EventTimeBatches(consumer, max_batch=10).next_batch(timeout_ms=0)  # type: ignore[arg-type]
    assert offsets([batch]) == {A: [0, 1], B: [0, 1, 2]}


async def test_batches_never_exceed_the_maximum_even_when_every_stamp_is_equal():
    consumer = Consumer({A: [7] * 10, B: [7] * 10, C: [7] * 10})
    got = await drain(EventTimeBatches(consumer, max_batch=4, lookahead=10))  # type: ignore[arg-type]
    assert all(sum(len(r) for r in batch.values()) <= 4 for batch in got)
    assert offsets(got) == {tp: list(range(10)) for tp in (A, B, C)}


async def test_timestamps_out_of_order_within_a_partition_still_give_offset_order():
    consumer = Consumer({A: [5, 1, 9, 2, 3], B: [4, 6, 8]})
    got = await drain(EventTimeBatches(consumer, max_batch=2, lookahead=2))  # type: ignore[arg-type]
    assert offsets(got) == {A: [0, 1, 2, 3, 4], B: [0, 1, 2]}


async def test_a_record_stamped_in_the_future_goes_out_with_those_read_after_it():
    now = int(time.time() * 1000)
    # B stays behind (more in Kafka than its lookahead), its records stamped just after now.
    consumer = Consumer({A: [now + 86_400_000], B: [now + 1000] * 6})
    batch = await EventTimeBatches(consumer, max_batch=100, lookahead=3).next_batch(0)  # type: ignore[arg-type]
    assert A in batch  # its stamp counts as the time it was read, not a day ahead


async def test_a_starving_partition_is_waited_for():
    # A has records in Kafka but none fetched yet: without waiting, B would run ahead of it.
    consumer = Consumer({A: [1, 2], B: [3, 4]}, fetched={A: 0, B: 2})
    batches = EventTimeBatches(consumer, max_batch=2, lookahead=2)  # type: ignore[arg-type]
    batch = await batches.next_batch(timeout_ms=0)
    assert offsets([batch]) == {A: [0, 1]}


async def test_a_replay_stops_at_its_ends_and_puts_back_what_it_read_past_them():
    consumer = Consumer({A: [1, 2, 3, 4, 5], B: [1, 2]})
    batches = EventTimeBatches(consumer, max_batch=100, ends={A: 3, B: 2})  # type: ignore[arg-type]
    got = await drain(batches)
    assert offsets(got) == {A: [0, 1, 2], B: [0, 1]}
    assert (A, 3) in consumer.seeks and await batches.position(A) == 3


async def test_the_position_is_that_of_the_first_record_held():
    consumer = Consumer({A: [1, 2, 3, 10], B: [5, 6]}, fetched={A: 3, B: 2})
    batches = EventTimeBatches(consumer, max_batch=100)  # type: ignore[arg-type]
    batch = await batches.next_batch(timeout_ms=0)
    assert offsets([batch]) == {A: [0, 1, 2]}  # B waits for A's next record
    assert await batches.position(B) == 0 and consumer.positions[B] == 2


async def test_forgetting_a_partition_drops_only_what_is_held_of_it():
    consumer = Consumer({A: [1, 2, 3, 10], B: [5, 6]}, fetched={A: 3, B: 2})
    batches = EventTimeBatches(consumer, max_batch=100)  # type: ignore[arg-type]
    await batches.next_batch(timeout_ms=0)
    batches.forget(A)
    assert batches.held() == 2
    consumer.seek(B, 0)
    batches.forget(B)
    assert batches.held() == 0
    again = await drain(batches)
    assert offsets(again) == {A: [3], B: [0, 1]}
