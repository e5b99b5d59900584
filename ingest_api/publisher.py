"""The port through which the API publishes events, and its Kafka adapter."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from events.codec import encode
from events.models import Event


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: str
    event: Event


class PublishError(Exception):
    """Kafka did not acknowledge every event."""


class EventPublisher(Protocol):
    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish all, in order per key; return once every one is acknowledged."""


class KafkaEventPublisher:
    def __init__(self, producer: AIOKafkaProducer):
        self.producer = producer

    async def publish(self, messages: Sequence[Outgoing]) -> None:
        try:
            deliveries = [
                await self.producer.send(m.topic, value=encode(m.event), key=m.key.encode())
                for m in messages
            ]
            await asyncio.gather(*deliveries)
        except (KafkaError, TimeoutError) as exc:
            raise PublishError(repr(exc)) from exc
