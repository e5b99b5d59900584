"""The dead-letter topic for operators (``batchctl dlq``, the console's operator page): list
what is there and why, show one letter, and redrive letters to the topic they came from
(once their cause is fixed: a deployed upcaster, a corrected upstream publisher) — where
they are decoded and validated again.

A letter's headers are data like any other (an upstream publisher's record can carry what it
likes), so a redrive goes only to the topic where the letter's event type belongs under this
deployment's prefix, and only when that is the topic it came from."""

import re
from dataclasses import dataclass
from typing import Any

import orjson

from events.limits import safe_text
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


class CannotRedrive(Exception):
    """The letter does not say which of this deployment's topics it belongs on."""


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
        """A header as text fit for a terminal (no control characters)."""
        return safe_text(self.headers.get(name, b"").decode(errors="replace"))

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


async def read_letters(settings: KafkaSettings, newest: int | None = None) -> list[Letter]:
    """Every letter in the dead-letter topic now (or the ``newest`` of each partition),
    oldest first per partition."""
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
        if newest is not None:
            for tp, end in ends.items():
                if end - newest > await consumer.position(tp):
                    consumer.seek(tp, end - newest)
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


_JOB_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOPIC_OF_EVENT = {
    "JobSubmitted": "jobs",
    "JobCancelRequested": "jobs",
    "JobFinished": "notifications",
}


def target_topic(settings: KafkaSettings, letter: Letter) -> str:
    """The topic a letter goes back to: where its event type (and job type) belongs under
    this deployment's prefix, in the lane it came from, which must be the topic it came from;
    else ``CannotRedrive``."""
    try:
        event = orjson.loads(letter.value or b"")
    except orjson.JSONDecodeError:
        event = None
    event_type = event.get("event_type") if isinstance(event, dict) else None
    topics = settings.topics
    lane = topics.lane_of(letter.header(HEADER_TOPIC) or "")
    if event_type == "ItemSubmitted":
        job_type = event.get("job_type") if isinstance(event, dict) else None
        if not isinstance(job_type, str) or not _JOB_TYPE.match(job_type):
            raise CannotRedrive(f"letter {letter.id}: an ItemSubmitted without a valid job_type")
        topic = topics.items(job_type, lane)
    elif event_type in ("ItemSucceeded", "ItemFailed", "ItemCancelled"):
        topic = topics.outcomes_of(lane)
    elif isinstance(event_type, str) and event_type in _TOPIC_OF_EVENT:
        topic = getattr(topics, _TOPIC_OF_EVENT[event_type])
    else:
        raise CannotRedrive(
            f"letter {letter.id}: not an event of a known type, so it belongs on no topic"
        )
    source = letter.header(HEADER_TOPIC)
    if source != topic:
        raise CannotRedrive(
            f"letter {letter.id} came from {source or 'an unnamed topic'!r}, but its "
            f"{event_type} belongs on {topic!r}"
        )
    return topic


async def redrive(settings: KafkaSettings, letters: list[Letter]) -> list[tuple[Letter, str]]:
    """Publish each letter's original bytes, with its original key, to the topic it came
    from (``target_topic``: ``CannotRedrive`` before anything is published if one does not
    say it); return (letter, topic) for each, once Kafka has acknowledged them all."""
    targets = [(letter, target_topic(settings, letter)) for letter in letters]
    producer = make_producer(settings, max_request_size=8 << 20)
    await producer.start()
    done = []
    try:
        for letter, topic in targets:
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
