"""Dead letters: what a worker or the projector could not decode, validate or store goes to
the DLQ topic unchanged, with headers saying why and where it came from."""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, ValidationError

from events.limits import safe_text
from events.models import ItemIndex

HEADER_REASON = "dlq.reason"
HEADER_MESSAGE = "dlq.message"
HEADER_TOPIC = "dlq.source.topic"
HEADER_PARTITION = "dlq.source.partition"
HEADER_OFFSET = "dlq.source.offset"
HEADER_KEY = "dlq.source.key"


@dataclass(frozen=True)
class DeadLetter:
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes]]


def dead_letter(record: ConsumerRecord[Any, Any], reason: str, message: str) -> DeadLetter:
    headers = [
        (HEADER_REASON, reason.encode()),
        (HEADER_MESSAGE, safe_text(message[:1000]).encode()),
        (HEADER_TOPIC, record.topic.encode()),
        (HEADER_PARTITION, str(record.partition).encode()),
        (HEADER_OFFSET, str(record.offset).encode()),
    ]
    if record.key is not None:
        headers.append((HEADER_KEY, record.key))
    return DeadLetter(value=record.value, key=record.key, headers=headers)


class DeadLetterPublisher:
    """Publishes dead letters one by one, each acknowledged (they are rare: the projector's
    quarantined records)."""

    def __init__(self, producer: AIOKafkaProducer, topic: str):
        self.producer = producer
        self.topic = topic

    async def __call__(self, letters: list[DeadLetter]) -> None:
        for letter in letters:
            await self.producer.send_and_wait(
                self.topic, value=letter.value, key=letter.key, headers=letter.headers
            )


class _ItemAddress(BaseModel):
    job_id: UUID
    item_index: ItemIndex


def item_address(payload: dict[str, Any] | None) -> tuple[UUID, int] | None:
    """The (job id, item index) a rejected event still names, if it names one clearly."""
    if not payload:
        return None
    try:
        address = _ItemAddress.model_validate(
            {"job_id": payload.get("job_id"), "item_index": payload.get("item_index")}
        )
    except ValidationError:
        return None
    return address.job_id, address.item_index
