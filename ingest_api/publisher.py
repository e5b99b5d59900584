"""The port through which the API publishes events, and its Kafka adapter."""

import asyncio
from collections.abc import Sequence
from typing import NamedTuple, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from events.codec import MAX_EVENT_BYTES, encode
from events.models import Event
from streaming.batch_sender import BatchSender, DeliveryFailed, MessageTooLarge


class Outgoing(NamedTuple):
    """A message to publish: an event, or (the per-item hot path) its encoded bytes. (A
    tuple: one is made per item, and a frozen dataclass took three times as long.)"""

    topic: str
    key: str
    event: Event | None = None
    value: bytes | None = None

    def encoded(self) -> bytes:
        if self.value is not None:
            return self.value
        assert self.event is not None
        return encode(self.event)


class PublishError(Exception):
    """Kafka did not acknowledge every event."""


class EventTooLarge(Exception):
    """An event is larger than the broker takes: nothing of the call was published."""


class EventPublisher(Protocol):
    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish all, in order per key; return once every one is acknowledged."""


class KafkaEventPublisher:
    """Publishes through a ``BatchSender``: messages are appended to per-partition batches
    (far cheaper than a ``producer.send`` each) and ``publish`` returns when
    Kafka has acknowledged all of them, or fails within ``timeout_s``. After a failed
    delivery the sender is replaced, so one broker outage does not outlive itself."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topics: list[str],
        *,
        timeout_s: float,
        max_event_bytes: int = MAX_EVENT_BYTES,
        linger_s: float = 0.002,
    ):
        self.producer = producer
        self.topics = topics
        self.timeout_s = timeout_s
        self.max_event_bytes = max_event_bytes
        self.linger_s = linger_s
        self.sender: BatchSender | None = None
        self._closing: set[asyncio.Task[None]] = set()  # senders dropped after a failure

    async def start(self) -> None:
        self.sender = BatchSender(self.producer, linger_s=self.linger_s)
        await self.sender.start(self.topics)

    async def close(self) -> None:
        if self.sender is not None:
            await self.sender.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Raises ``EventTooLarge`` (publishing none of them) if a message is larger than
        ``max_event_bytes``, ``PublishError`` if Kafka does not acknowledge them all."""
        if not messages:
            return
        encoded = [(m.topic, m.key.encode(), m.encoded()) for m in messages]
        largest = max(len(value) for _, _, value in encoded)
        if largest > self.max_event_bytes:
            raise EventTooLarge(
                f"an event of {largest} bytes exceeds the limit of {self.max_event_bytes}"
            )
        if self.sender is None:
            await self.start()
        sender = self.sender
        assert sender is not None
        done = asyncio.get_running_loop().create_future()
        remaining = len(messages)

        def acknowledged() -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0 and not done.done():
                done.set_result(None)

        try:
            async with asyncio.timeout(self.timeout_s):
                for topic, key, value in encoded:
                    if not sender.append_nowait(topic, key, value, acknowledged):
                        await sender.append(topic, key, value, acknowledged)
                await done
        except MessageTooLarge as exc:  # the producer's own limit: this call only
            raise EventTooLarge(str(exc)) from exc
        except (DeliveryFailed, KafkaError, TimeoutError) as exc:
            if self.sender is sender:
                self.sender = None  # the next publish starts afresh
                closing = asyncio.get_running_loop().create_task(sender.close())
                self._closing.add(closing)  # (a task without a reference may be collected)
                closing.add_done_callback(self._closing.discard)
            raise PublishError(repr(exc)) from exc
