"""A poison corpus published straight to every topic, on the real services: more than a
thousand records built from hypothesis-generated hostile values (NUL and other control
characters, lone surrogates, integers of any size, NaN and infinities, deep nesting, wrong
types, oversized payloads, valid envelopes with hostile contents). Afterwards every process
is still running, every refused record is in the dead-letter topic (and an item it names has
failed with a code), no row of anyone else's job changed, a normal job completes exactly,
and both kinds of replay rebuild the same tables."""

import asyncio
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from events.codec import EventDecodeError, decode, encode
from events.models import ItemFailed, ItemSubmitted, ItemSucceeded, JobCancelRequested, JobSubmitted
from streaming.clients import make_producer
from streaming.dead_letters import HEADER_OFFSET, HEADER_PARTITION, HEADER_TOPIC
from streaming.letters import read_letters
from tests.integration.conftest import submit, wait_for, wait_fully_folded, wait_job
from tests.integration.test_replay import TABLES
from tests.support.hostile import hostile_values, nested, past_the_limits

HASH = "ab" * 32
VALUES = 100  # hostile values
PER_VALUE = 10  # records each is placed in (the first: a query item's input)


@dataclass
class Poison:
    topic: str
    key: bytes | None
    value: bytes | None
    names_item: tuple[uuid.UUID, int] | None = None  # a clean item address (items topics)
    where: tuple[str, int, int] | None = None  # (topic, partition, offset) once published

    @property
    def refused(self) -> bool:
        """The contract's verdict (``tests/unit/test_limits.py`` holds it to the plain
        limits)."""
        try:
            decode(self.value, max_bytes=1_000_000)
        except EventDecodeError:
            return True
        return False


def _dump(payload: Any) -> bytes:
    """As a careless publisher writes it: NaN as NaN, integers of any size, surrogates as
    escapes (the standard library's encoder)."""
    return json.dumps(payload).encode()


def _event(event: Any, **replace: Any) -> dict[str, Any]:
    return {**orjson.loads(encode(event)), **replace}


def corpus(topics: Any, values: list[Any]) -> tuple[list[Poison], set[uuid.UUID]]:
    records: list[Poison] = []
    jobs: set[uuid.UUID] = set()

    def job() -> uuid.UUID:
        jobs.add(new := uuid.uuid4())
        return new

    def item(job_type: str, input_: dict[str, Any]) -> Poison:
        job_id = job()
        event = ItemSubmitted.new(job_id=job_id, item_index=0, job_type=job_type, input={})
        return Poison(
            topics.items(job_type),
            f"{job_id}:0".encode(),
            _dump(_event(event, input=input_)),
            names_item=(job_id, 0),
        )

    for value in values:
        text_value = value if isinstance(value, str) else "ok"
        device = f"d-{uuid.uuid4()}"
        records += [
            item("query", {"content_hash": HASH, "x": value}),
            item("enrollment", {"device_id": device, "public_key": "QUJD", "label": value}),
            item(
                "proof_lock",
                {"device_id": "d", "content_hash": HASH, "signature": "QUJD", "captured_at": value},
            ),
        ]
        outcome_job, jobs_job = job(), job()
        succeeded = ItemSucceeded.new(job_id=outcome_job, item_index=0, output={})
        failed = ItemFailed.new(job_id=outcome_job, item_index=1, error_code="e", error_message="")
        submitted = JobSubmitted.new(job_id=jobs_job, job_type="query", user_id="p", total_items=1)
        cancel = JobCancelRequested.new(job_id=jobs_job, user_id="p")
        key = str(outcome_job).encode()
        records += [
            Poison(topics.outcomes, key, _dump(_event(succeeded, output={"x": value}))),
            Poison(topics.outcomes, key, _dump(_event(failed, error_message=text_value))),
            Poison(topics.outcomes, key, _dump(_event(succeeded, item_index=value))),
            Poison(
                topics.jobs,
                str(jobs_job).encode(),
                _dump(_event(submitted, user_id=text_value or "p", metadata={"x": value})),
            ),
            Poison(topics.jobs, str(jobs_job).encode(), _dump(_event(cancel, user_id=text_value))),
            Poison(topics.items("query"), None, _dump(_event(submitted, job_id=value))),
            Poison(topics.jobs, None, _dump(value)),
        ]
    # What is not even JSON, or far too big, or nested past any parser's limit.
    oversized = item("query", {"content_hash": HASH, "pad": "x" * 1_100_000})
    deep = item("query", {"content_hash": HASH, "x": nested(300)})
    for topic in (topics.jobs, topics.outcomes, topics.items("query"), topics.items("enrollment")):
        records += [
            Poison(topic, b"k", b""),
            Poison(topic, b"k", None),
            Poison(topic, b"k", b"\xff\xfe\x00 not utf-8"),
            Poison(topic, b"k", b'{"event_type": "ItemSubmitted", "job_id": "'),
        ]
    records += [oversized, deep]
    return records, jobs


async def _publish(settings: Any, records: list[Poison]) -> None:
    producer = make_producer(settings, max_request_size=4 << 20, linger_ms=20)
    await producer.start()
    try:
        sent = [await producer.send(r.topic, value=r.value, key=r.key) for r in records]
        for record, delivery in zip(records, await asyncio.gather(*sent), strict=True):
            record.where = (delivery.topic, delivery.partition, delivery.offset)
        # and letters nobody could trust, straight into the dead-letter topic
        forged = [(HEADER_TOPIC, b"\x1b[2J"), ("dlq.message", b"\x00\xff")]
        await producer.send_and_wait(settings.topics.dlq, value=b"\x00", headers=forged)
    finally:
        await producer.stop()


def _rows(engine: Any, mine: set[uuid.UUID], *, of_mine: bool) -> dict[str, list[Any]]:
    """The projected rows of ``mine`` (or of every other job), in a fixed order."""
    state = {}
    with engine.connect() as conn:
        for table, key in TABLES.items():
            order = f"{key}, item_index" if table == "items" else key
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}")).mappings()
            state[table] = [dict(r) for r in rows if (r[key] in mine) == of_mine]
    return state


def _batchctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@settings(
    max_examples=1,
    phases=[Phase.generate],
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(values=st.lists(hostile_values, min_size=VALUES, max_size=VALUES))
def test_a_poison_corpus_on_every_topic_stops_nothing_and_changes_no_one_elses_rows(
    values, kafka_settings, engine, processes, stack_env, api, keys
):
    parts = [
        processes.start("worker", "--job-type", job_type)
        for job_type in ("query", "enrollment", "proof_lock")
    ]
    projector = processes.start("projector")
    parts.append(projector)
    topics = kafka_settings.topics
    records, mine = corpus(topics, values)
    assert len(records) >= 1000
    others_before = _rows(engine, mine, of_mine=False)

    asyncio.run(_publish(kafka_settings, records))

    def not_ended() -> list[Poison]:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT job_id, item_index FROM items WHERE status <> 'pending'")
            ).all()
        ended = {(job_id, index) for job_id, index in rows}
        return [r for r in records if r.names_item is not None and r.names_item not in ended]

    try:
        wait_for(lambda: not not_ended(), 180, "an outcome for every item the corpus names")
    except AssertionError:
        raise AssertionError(f"items without an outcome: {not_ended()[:5]}") from None
    wait_fully_folded(engine, kafka_settings, 120)
    assert all(part.poll() is None for part in parts), "a part stopped"

    # Every refused record is a dead letter, with where it came from.
    letters = asyncio.run(read_letters(kafka_settings))
    sources = {
        (
            letter.header(HEADER_TOPIC),
            int(letter.header(HEADER_PARTITION) or -1),
            int(letter.header(HEADER_OFFSET) or -1),
        )
        for letter in letters
    }
    refused = [r for r in records if r.refused]
    assert len(refused) >= len(records) // 4, "a corpus hostile enough"
    missing = [r for r in refused if r.where not in sources]
    assert missing == [], f"{len(missing)} refused records are not dead letters: {missing[:3]}"

    # An item a refused record names has failed with a code; a valid one has its outcome.
    with engine.connect() as conn:
        items = {
            (row.job_id, row.item_index): row
            for row in conn.execute(
                text("SELECT job_id, item_index, status, error_code FROM items")
            ).all()
        }
    for record in records:
        if record.names_item is None:
            continue
        row = items[record.names_item]
        if record.refused:
            assert (row.status, row.error_code) == ("failed", "malformed_event"), record
        else:
            assert row.status in ("success", "failed"), record
            assert row.status == "success" or row.error_code
    # Sanity of the corpus: what breaks the plain limits is refused, wherever it is placed.
    for record, value in zip(records[: PER_VALUE * VALUES : PER_VALUE], values, strict=True):
        if past_the_limits(json.loads(json.dumps(value))):
            assert record.refused

    assert _rows(engine, mine, of_mine=False) == others_before, "another job's rows changed"
    listed = _batchctl(stack_env, "dlq", "list", "--json")
    assert listed.returncode == 0 and "\x1b" not in listed.stdout, listed.stderr

    # A normal job submitted afterwards completes exactly.
    job_id = submit(
        api, keys["alice"], "query", [{"content_hash": f"{n:064x}"} for n in range(200)]
    )
    done = wait_job(engine, job_id, 90, lambda j: j["status"] == "completed", "the normal job")
    assert (done["total_items"], done["success_items"], done["processed_items"]) == (200, 200, 200)
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM items WHERE job_id = :id AND status = 'success'"),
            {"id": job_id},
        ).scalar_one()
    assert count == 200
    assert all(part.poll() is None for part in parts), "a part stopped"
    mine.add(job_id)

    # Replays fold the same log, poison and all, into the same tables.
    assert_both_replays_rebuild(engine, kafka_settings, stack_env, projector, mine)


def assert_both_replays_rebuild(  # type: ignore[no-untyped-def]
    engine, kafka_settings, stack_env, projector, jobs: set[uuid.UUID]
) -> dict[str, list[Any]]:
    """A shadow replay beside the running ``projector``, then (it stopped) an in-place one:
    each leaves the rows of ``jobs`` as the live projector wrote them; returns those."""
    wait_fully_folded(engine, kafka_settings, 120)
    live = _rows(engine, jobs, of_mine=True)
    shadow = _batchctl(stack_env, "replay")
    assert shadow.returncode == 0 and "swapped in" in shadow.stdout, shadow.stderr
    wait_fully_folded(engine, kafka_settings, 120)
    assert _rows(engine, jobs, of_mine=True) == live
    projector.terminate()
    assert projector.wait(30) == 0
    in_place = _batchctl(stack_env, "replay", "--in-place")
    assert in_place.returncode == 0, in_place.stderr
    assert _rows(engine, jobs, of_mine=True) == live
    return live
