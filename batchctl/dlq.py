"""The dead-letter topic for operators: list what is there and why, show one letter, and
redrive letters to the topic they came from (once their cause is fixed: a deployed upcaster,
a corrected upstream publisher) — where they are decoded and validated again."""

from dataclasses import dataclass
from typing import Any

from streaming.clients import make_consumer, make_producer, topic_partitions
from streaming.dead_letters import (
    HEADER_KEY,
    HEADER_MESSAGE,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
)
from streaming.settings import KafkaSettings

HEADER_REDRIVEN_FROM = "dlq.redriven.from"


class LetterNotFound(Exception):
    pass


@dataclass(frozen=True)
class Letter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str:
        return self.headers.get(name, b"").decode(errors="replace")

    @property
    def reason(self) -> str:
        return self.header(HEADER_REASON)

    @property
    def source(self) -> str:
        return (
            f"{self.header(HEADER_TOPIC)}[{self.header(HEADER_PARTITION)}]"
            f"@{self.header(HEADER_OFFSET)}"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp_ms": self.timestamp_ms,
            "reason": self.reason,
            "message": self.header(HEADER_MESSAGE),
            "source_topic": self.header(HEADER_TOPIC),
            "source_partition": self.header(HEADER_PARTITION),
            "source_offset": self.header(HEADER_OFFSET),
            "bytes": len(self.value or b""),
        }


async def read_letters(settings: KafkaSettings) -> list[Letter]:
    """Every letter in the dead-letter topic now, oldest first per partition."""
    topic = settings.topics.dlq
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, lambda name: name == topic)
        if not tps:
            return []
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        letters: list[Letter] = []
        remaining = {tp: end for tp, end in ends.items() if end > 0}
        for tp in remaining:
            if await consumer.position(tp) >= remaining[tp]:
                remaining[tp] = -1
        remaining = {tp: end for tp, end in remaining.items() if end > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < remaining.get(tp, 0):
                        letters.append(
                            Letter(
                                tp.partition,
                                r.offset,
                                r.timestamp,
                                r.key,
                                r.value,
                                {k: bytes(v) for k, v in r.headers},
                            )
                        )
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
        return letters
    finally:
        await consumer.stop()


def find(letters: list[Letter], letter_id: str) -> Letter:
    for letter in letters:
        if letter.id == letter_id:
            return letter
    raise LetterNotFound(
        f"no letter {letter_id!r} in the dead-letter topic (ids are partition:offset)"
    )


async def redrive(settings: KafkaSettings, letters: list[Letter]) -> list[tuple[Letter, str]]:
    """Publish each letter's original bytes, with its original key, to its source topic;
    return (letter, topic) for each, once Kafka has acknowledged them all."""
    producer = make_producer(settings, max_request_size=8 << 20)
    await producer.start()
    done = []
    try:
        for letter in letters:
            topic = letter.header(HEADER_TOPIC)
            if not topic:
                raise LetterNotFound(f"letter {letter.id} does not name its source topic")
            key = letter.headers.get(HEADER_KEY, letter.key)
            await producer.send_and_wait(
                topic,
                value=letter.value,
                key=key,
                headers=[(HEADER_REDRIVEN_FROM, letter.id.encode())],
            )
            done.append((letter, topic))
    finally:
        await producer.stop()
    return done
