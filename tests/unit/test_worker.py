"""The worker's record path without Kafka: a stub consumer hands it records, the real sink
builds aiokafka's record batches on a stub producer that acknowledges what it is sent.
Every record ends in one outcome; offsets move only over acknowledged outcomes; records of
a released partition still queued are never processed."""

import asyncio
import dataclasses
import uuid

import orjson
import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.structs import ConsumerRecord, TopicPartition

from archive_jobs.noop import NoopHandler, NoopInput, NoopOutput
from consumers.failures import WorkerBroken
from consumers.settings import WorkerSettings
from consumers.worker import Worker
from events.codec import encode
from events.models import ItemSubmitted
from jobtypes.contract import ItemContext
from streaming.batch_sender import BatchSender, DeliveryFailed

ITEMS = TopicPartition("t.items.noop", 0)


class StubProducer:
    def __init__(self) -> None:
        self.acknowledge = asyncio.Event()
        self.acknowledge.set()
        self.sent: list[BatchBuilder] = []
        self.sent_topics: list[str] = []
        self._acknowledging: set[asyncio.Future[None]] = set()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(64 * 1024, 0)

    async def send_batch(
        self, builder: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def acknowledge_when_told() -> None:
            await self.acknowledge.wait()
            self.sent.append(builder)
            self.sent_topics.append(topic)
            delivered.set_result(None)

        acknowledging = asyncio.ensure_future(acknowledge_when_told())
        self._acknowledging.add(acknowledging)
        acknowledging.add_done_callback(self._acknowledging.discard)
        return delivered

    def sent_by_topic(self) -> dict[str, list[dict]]:  # type: ignore[type-arg]
        values: dict[str, list[dict]] = {}  # type: ignore[type-arg]
        for topic, builder in zip(self.sent_topics, self.sent, strict=True):
            batch = DefaultRecordBatch(bytes(builder._builder.build()))
            values.setdefault(topic, []).extend(orjson.loads(r.value) for r in batch)
        return values

    def outcomes(self) -> list[dict]:  # type: ignore[type-arg]
        values = []
        for builder in self.sent:
            batch = DefaultRecordBatch(bytes(builder._builder.build()))
            values += [orjson.loads(record.value) for record in batch]
        return values


class StubConsumer:
    def __init__(self) -> None:
        self.partitions = frozenset({ITEMS})
        self.highwaters: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    async def commit(self, positions: dict[TopicPartition, int]) -> None:
        self.committed = positions

    def paused(self) -> set[TopicPartition]:
        return set(getattr(self, "_paused", set()))

    def pause(self, *tps: TopicPartition) -> None:
        self._paused = self.paused() | set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused = self.paused() - set(tps)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)

    async def position(self, tp: TopicPartition) -> int:
        return self.positions.get(tp, 0)


class GatedNoop(NoopHandler):
    """Waits at a gate (so that records queue up behind it), then does nothing."""

    gate: asyncio.Event

    async def handle(self, item: NoopInput, context: ItemContext) -> NoopOutput:
        await self.gate.wait()
        return NoopOutput(n=item.n)


def records(count: int) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    job = uuid.uuid4()
    made = []
    for i in range(count):
        value = encode(ItemSubmitted.new(job_id=job, item_index=i, job_type="noop", input={"n": i}))
        key = f"{job}:{i}".encode()
        made.append(
            ConsumerRecord(ITEMS.topic, 0, i, 0, 0, key, value, None, len(key), len(value), ())
        )
    return made


@pytest.fixture
async def sink_and_producer():
    producer = StubProducer()
    sink = BatchSender(producer, linger_s=0.001)  # type: ignore[arg-type]
    settings = WorkerSettings()
    await sink.start([*settings.topics.all_outcomes(), settings.topics.dlq])
    yield sink, producer
    producer.acknowledge.set()
    await asyncio.wait_for(sink.close(), 5)


async def test_every_record_gets_one_outcome_and_offsets_follow_acknowledgements(
    sink_and_producer,
):
    sink, producer = sink_and_producer
    producer.acknowledge.clear()  # Kafka has acknowledged nothing yet
    worker = Worker(WorkerSettings(), NoopHandler(), StubConsumer(), sink)  # type: ignore[arg-type]
    await worker._dispatch(ITEMS, records(1000))
    await worker.dispatcher.drained()
    await asyncio.sleep(0.05)
    assert worker.offsets[ITEMS].to_commit() is None  # nothing acknowledged: nothing to commit
    producer.acknowledge.set()
    await sink.flush()
    assert worker.offsets[ITEMS].to_commit() == 1000
    outcomes = producer.outcomes()
    assert sorted(o["item_index"] for o in outcomes) == list(range(1000))
    assert {o["event_type"] for o in outcomes} == {"ItemSucceeded"}
    assert worker.counts["ItemSucceeded"] == 1000


async def test_records_of_a_released_partition_still_queued_are_not_processed(
    sink_and_producer,
):
    sink, producer = sink_and_producer
    handler = GatedNoop()
    handler.gate = asyncio.Event()
    settings = WorkerSettings(worker_concurrency=2, worker_shutdown_grace_s=5)
    worker = Worker(settings, handler, StubConsumer(), sink)  # type: ignore[arg-type]
    await worker._dispatch(ITEMS, records(10))
    assert worker.dispatcher.queued == 8  # two running (at the gate), eight behind them
    releasing = asyncio.ensure_future(worker.release([ITEMS]))
    await asyncio.sleep(0.05)
    handler.gate.set()  # the two in flight finish within the grace period
    await releasing
    await worker.dispatcher.drained()
    await sink.flush()
    assert sorted(o["item_index"] for o in producer.outcomes()) == [0, 1]
    assert worker.consumer.committed == {ITEMS: 2}


class OneBatchAtATime(StubProducer):
    """Takes a partition's next batch only once the last is acknowledged (as aiokafka takes
    one undrained batch per partition)."""

    async def send_batch(
        self, builder: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        await self.acknowledge.wait()
        return await super().send_batch(builder, topic, partition=partition)


async def test_the_fetch_loop_waits_for_room_in_the_sink_and_loses_nothing():
    producer = OneBatchAtATime()
    sink = BatchSender(producer, linger_s=0.001)  # type: ignore[arg-type]
    settings = WorkerSettings()
    await sink.start([settings.topics.outcomes, settings.topics.dlq])
    producer.acknowledge.clear()  # the outcome batches fill up: the sink has no room left
    worker = Worker(WorkerSettings(), NoopHandler(), StubConsumer(), sink)  # type: ignore[arg-type]
    dispatching = asyncio.ensure_future(worker._dispatch(ITEMS, records(5000)))
    await asyncio.sleep(0.2)
    assert not dispatching.done()  # held back: more outcomes than the sink takes unacknowledged
    assert worker.offsets[ITEMS].running > 0  # the records waiting to publish count as running
    producer.acknowledge.set()
    await asyncio.wait_for(dispatching, 10)
    await worker.dispatcher.drained()
    await sink.flush()
    assert sorted(o["item_index"] for o in producer.outcomes()) == list(range(5000))
    assert worker.offsets[ITEMS].to_commit() == 5000
    assert worker.offsets[ITEMS].running == 0
    await sink.close()


async def test_a_record_that_breaks_the_reader_fails_its_item_and_the_partition_moves_on(
    sink_and_producer, monkeypatch, caplog
):
    sink, producer = sink_and_producer
    worker = Worker(WorkerSettings(), NoopHandler(), StubConsumer(), sink)  # type: ignore[arg-type]
    batch = records(10)
    real_read = worker.reader.read

    def read(value):  # type: ignore[no-untyped-def]
        if value == batch[4].value:
            raise RuntimeError("a bug in reading")
        return real_read(value)

    monkeypatch.setattr(worker.reader, "read", read)
    await worker._dispatch(ITEMS, batch)
    await worker.dispatcher.drained()
    await sink.flush()
    outcomes = {o["item_index"]: o for o in producer.outcomes()}
    assert sorted(outcomes) == list(range(10))
    assert outcomes[4]["event_type"] == "ItemFailed"
    assert outcomes[4]["error_code"] == "internal_error"
    assert "RuntimeError: a bug in reading" in outcomes[4]["error_message"]
    assert worker.offsets[ITEMS].to_commit() == 10  # not held at the record
    assert "a bug on t.items.noop[0]@4" in caplog.text and worker.broken is None


async def test_a_bug_in_publishing_an_outcome_fails_the_item_instead(
    sink_and_producer, monkeypatch
):
    sink, producer = sink_and_producer
    worker = Worker(WorkerSettings(), NoopHandler(), StubConsumer(), sink)  # type: ignore[arg-type]
    real_emit_nowait, broke = worker._emit_nowait, []

    def emit_nowait(topic, job, outcome, ack):  # type: ignore[no-untyped-def]
        if b'"item_index":3' in outcome.value and not broke:
            broke.append(outcome)
            raise ValueError("a bug in publishing")
        return real_emit_nowait(topic, job, outcome, ack)

    monkeypatch.setattr(worker, "_emit_nowait", emit_nowait)
    await worker._dispatch(ITEMS, records(10))
    await worker.dispatcher.drained()
    await sink.flush()
    outcomes = {o["item_index"]: o for o in producer.outcomes()}
    assert sorted(outcomes) == list(range(10)) and broke
    assert outcomes[3]["error_code"] == "internal_error"
    assert worker.offsets[ITEMS].to_commit() == 10


async def test_kafka_not_acknowledging_is_not_a_bug_the_record_waits_for_the_next_session(
    sink_and_producer, monkeypatch
):
    sink, producer = sink_and_producer
    worker = Worker(WorkerSettings(), NoopHandler(), StubConsumer(), sink)  # type: ignore[arg-type]
    real_emit_nowait = worker._emit_nowait

    def emit_nowait(topic, job, outcome, ack):  # type: ignore[no-untyped-def]
        if b'"item_index":3' in outcome.value:
            raise DeliveryFailed("no acknowledgement")
        return real_emit_nowait(topic, job, outcome, ack)

    monkeypatch.setattr(worker, "_emit_nowait", emit_nowait)
    await worker._dispatch(ITEMS, records(10))
    await worker.dispatcher.drained()
    await sink.flush()
    assert sorted(o["item_index"] for o in producer.outcomes()) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert worker.offsets[ITEMS].to_commit() == 3  # held: delivered again after a restart
    assert worker.broken is None


class OnceConsumer(StubConsumer):
    """Hands out one batch, then nothing."""

    def __init__(self, batch: list[ConsumerRecord]) -> None:  # type: ignore[type-arg]
        super().__init__()
        self.batch: list[ConsumerRecord] | None = batch  # type: ignore[type-arg]

    async def getmany(self, timeout_ms: int, max_records: int):  # type: ignore[no-untyped-def]
        batch, self.batch = self.batch, None
        if batch is None:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        return {ITEMS: batch}


async def test_a_bug_it_cannot_settle_stops_the_worker_after_committing_what_is_done(
    sink_and_producer, monkeypatch
):
    sink, producer = sink_and_producer
    consumer = OnceConsumer(records(10))
    worker = Worker(WorkerSettings(), NoopHandler(), consumer, sink)  # type: ignore[arg-type]
    real_emit_nowait = worker._emit_nowait

    def emit_nowait(topic, job, outcome, ack):  # type: ignore[no-untyped-def]
        if b'"item_index":5' in outcome.value:  # the internal_error outcome too
            raise ValueError("publishing is broken for this item")
        return real_emit_nowait(topic, job, outcome, ack)

    monkeypatch.setattr(worker, "_emit_nowait", emit_nowait)
    with pytest.raises(WorkerBroken, match="publishing is broken"):
        await asyncio.wait_for(worker.run(asyncio.Event()), 10)
    assert consumer.committed == {ITEMS: 5}  # what was acknowledged before the bug
    assert sorted(o["item_index"] for o in producer.outcomes()) == [0, 1, 2, 3, 4, 6, 7, 8, 9]


INTERACTIVE = TopicPartition(WorkerSettings().topics.items("noop", "interactive"), 0)


async def test_the_bulk_lane_waits_while_the_interactive_lane_has_records_to_take(
    sink_and_producer,
):
    sink, _ = sink_and_producer
    consumer = StubConsumer()
    consumer.partitions = frozenset({ITEMS, INTERACTIVE})
    consumer.highwaters = {ITEMS: 1_000_000, INTERACTIVE: 10}
    consumer.positions = {ITEMS: 5, INTERACTIVE: 0}
    worker = Worker(WorkerSettings(), NoopHandler(), consumer, sink)  # type: ignore[arg-type]
    assert await worker._choose_partitions() == [INTERACTIVE]  # only its records are taken
    assert consumer.paused() == set()  # the bulk lane's fetched records stay buffered
    consumer.positions[INTERACTIVE] = 10  # taken
    assert await worker._choose_partitions() == []  # all
    worker.outage.met("postgresql")  # an outage pauses both lanes
    assert await worker._choose_partitions() == []
    assert consumer.paused() == {ITEMS, INTERACTIVE}
    worker.outage.over("postgresql")
    await worker._choose_partitions()
    assert consumer.paused() == set()


async def test_an_interactive_items_outcome_goes_to_the_interactive_outcomes_topic(
    sink_and_producer,
):
    sink, producer = sink_and_producer
    consumer = StubConsumer()
    consumer.partitions = frozenset({ITEMS, INTERACTIVE})
    worker = Worker(WorkerSettings(), NoopHandler(), consumer, sink)  # type: ignore[arg-type]
    interactive = [dataclasses.replace(r, topic=INTERACTIVE.topic) for r in records(3)]
    await worker._dispatch(INTERACTIVE, interactive)
    await worker._dispatch(ITEMS, records(2))
    await worker.dispatcher.drained()
    await sink.flush()
    topics = WorkerSettings().topics
    by_topic = {t: len(batches) for t, batches in producer.sent_by_topic().items()}
    assert by_topic == {topics.outcomes_of("interactive"): 3, topics.outcomes: 2}
