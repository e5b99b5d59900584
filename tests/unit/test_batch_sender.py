"""The batched sender against a stub producer that builds aiokafka's real record batches and
acknowledges them when told to: batches roll over when full, acknowledgements wait for
Kafka's, and a partition with too many batches waiting pushes back."""

import asyncio

import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder

from streaming.batch_sender import (
    LARGE_MESSAGE,
    MAX_CLOSED_PER_PARTITION,
    BatchSender,
    DeliveryFailed,
    MessageTooLarge,
)

BATCH_BYTES = 4096
MESSAGE = b"x" * 200  # ~20 to a batch


class StubProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, BatchBuilder, asyncio.Future[None]]] = []
        self.auto_acknowledge = False

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(BATCH_BYTES, 0)

    async def send_batch(
        self, builder: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        # As aiokafka: one batch of a partition in flight at a time.
        for _, earlier_partition, _, earlier in self.sent:
            if earlier_partition == partition and not earlier.done():
                await asyncio.shield(earlier)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, partition, builder, delivered))
        if self.auto_acknowledge:
            delivered.set_result(None)
        return delivered

    def acknowledge_all(self) -> None:
        for *_, delivered in self.sent:
            if not delivered.done():
                delivered.set_result(None)


@pytest.fixture
async def sender():
    producer = StubProducer()
    sink = BatchSender(producer, linger_s=0.01)  # type: ignore[arg-type]
    await sink.start(["out"])
    yield sink, producer
    producer.auto_acknowledge = True
    producer.acknowledge_all()
    await asyncio.wait_for(sink.close(), 5)


async def test_messages_fill_batches_in_order_and_are_acknowledged_only_by_kafka(sender):
    sink, producer = sender
    acked: list[int] = []
    for i in range(100):
        assert sink.append_nowait("out", b"job", MESSAGE, lambda i=i: acked.append(i))
    await asyncio.sleep(0.05)  # the linger closes the last, partial batch
    assert acked == []  # nothing is acknowledged before Kafka acknowledges it
    for _ in range(20):  # Kafka acknowledges each batch in flight, one after another
        producer.acknowledge_all()
        await asyncio.sleep(0.005)
    assert acked == list(range(100))
    assert len(producer.sent) >= 100 * len(MESSAGE) // BATCH_BYTES  # rolled over when full
    assert len({partition for _, partition, _, _ in producer.sent}) == 1  # one key


async def test_a_partition_with_too_many_batches_waiting_pushes_back(sender):
    sink, producer = sender
    acked: list[int] = []
    added = 0
    # The stub acknowledges nothing: batches queue up behind the one submitted.
    while sink.append_nowait("out", b"job", MESSAGE, lambda: acked.append(1)):
        added += 1
        if added % 20 == 0:
            await asyncio.sleep(0)  # let the partition's sender submit what it can
        assert added < 10_000, "never pushed back"
    batches = added * len(MESSAGE) // BATCH_BYTES
    assert MAX_CLOSED_PER_PARTITION <= batches <= MAX_CLOSED_PER_PARTITION + 3
    waiting = asyncio.ensure_future(sink.append("out", b"job", MESSAGE, lambda: acked.append(1)))
    await asyncio.sleep(0.02)
    assert not waiting.done()
    for _ in range(20):  # Kafka acknowledges: room again
        producer.acknowledge_all()
        await asyncio.sleep(0.01)
    await asyncio.wait_for(waiting, 1)
    await sink.flush()
    assert len(acked) == added + 1


async def test_a_batch_lingers_on_while_batches_ahead_of_it_wait(sender):
    sink, producer = sender
    for _ in range(3 * BATCH_BYTES // len(MESSAGE)):  # three full batches
        assert sink.append_nowait("out", b"job", MESSAGE, lambda: None)
    await asyncio.sleep(0.03)  # one is submitted; the stub acknowledges nothing yet
    out = next(iter(sink._outs.values()))
    assert out.closed  # full batches wait for the one in flight
    partial = out.open
    assert partial is not None and partial.acks
    await asyncio.sleep(5 * sink.linger_s)
    assert out.open is partial  # not closed by the linger: it would go out no sooner
    for _ in range(20):  # Kafka acknowledges: the batches ahead go, then the partial one
        producer.acknowledge_all()
        await asyncio.sleep(0.01)
    assert out.open is None and not out.closed
    assert producer.sent[-1][2] is partial.builder


async def test_a_failed_delivery_fails_the_sender(sender):
    sink, producer = sender
    assert sink.append_nowait("out", b"job", MESSAGE, lambda: None)
    await asyncio.sleep(0.05)
    producer.sent[0][3].set_exception(RuntimeError("broker gone"))
    await asyncio.sleep(0)
    with pytest.raises(DeliveryFailed):
        sink.append_nowait("out", b"job", MESSAGE, lambda: None)


async def test_a_message_the_producer_refuses_as_too_large_fails_only_its_caller(sender):
    """A message larger than the producer sends (``max_request_size``) is its caller's
    error: the sender is not failed, and every other caller's messages go on."""
    sink, producer = sender
    acked: list[int] = []

    async def send(topic, value, key, partition, headers):  # type: ignore[no-untyped-def]
        raise MessageSizeTooLargeError(f"{len(value)} bytes is larger than allowed")

    producer.send = send
    with pytest.raises(MessageTooLarge):
        await sink.append("out", b"k", b"x" * (LARGE_MESSAGE + 1), lambda: acked.append(0))
    for i in range(1, 4):
        await sink.append("out", b"k", MESSAGE, lambda i=i: acked.append(i))
    producer.auto_acknowledge = True
    producer.acknowledge_all()
    await asyncio.wait_for(sink.flush(), 5)
    sink.check()  # not failed
    assert acked == [1, 2, 3]
