"""Rebuild the projected tables from the start of the topics (``batchctl replay``).

Shadow (the default): new tables are built in a schema of their own while the live ones
keep serving; the replay folds from the beginning to the head of every partition, catches
up with what arrived meanwhile, then swaps the new tables in with one transaction (under
the swap lock every write transaction shares, bumping the tables' epoch). Readers see the
old tables or the new ones, never a half-built state; a running projector notices the new
epoch in its next write and resumes from the new tables' positions. The old tables are
dropped after.

In place (``--in-place``): the replay holds the projection's advisory lock, so it refuses
to run beside a projector, captures the end of every partition, clears the tables and
positions in one transaction, and folds up to that end.

Both fold with the live fold and writer, at the same speed, and then restore the device and
proof registry from the rebuilt items (``registry_rebuild``).
"""

import asyncio
import re
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from projections.app import DATABASE_ERRORS, folding_consumer, lock_key
from projections.event_time import EventTimeBatches
from projections.projector import Projector, favour_the_writer, write_behind
from projections.registry_rebuild import rebuild_registry
from projections.settings import ProjectorSettings
from projections.writer import SWAP_LOCK, ProjectionWriter
from runtime import garbage_collector
from storage.engine import make_engine
from streaming.clients import topic_partitions

CLEAR = """
TRUNCATE jobs, items, results;
DELETE FROM projection_checkpoints WHERE projection = %s;
"""


class ProjectorRunning(Exception):
    """Another process holds the projection: an in-place replay would race it."""


class ReplayRunning(Exception):
    """Another shadow replay is running."""


class ReplayInterrupted(Exception):
    """The database went away during a replay (a restart): the live tables are as they were,
    or swapped whole (``swapped``); running the replay again is safe."""

    def __init__(self, cause: BaseException, *, swapped: bool):
        state = "the new tables were swapped in" if swapped else "the live tables are unchanged"
        super().__init__(f"the database went away ({type(cause).__name__}): {state}")
        self.swapped = swapped


# A shadow replay holds it: one at a time, and what a replay that lost its connection left
# (its ``replay_*`` and ``retired_*`` schemas) is dropped by the next.
REPLAY_LOCK = zlib.crc32(b"archiveorigin-batch shadow replay")
LEFTOVERS = """
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'replay\\_%' OR nspname LIKE 'retired\\_%'
"""


def _take_the_replay_lock(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (REPLAY_LOCK,))
        if not cur.fetchone()[0]:
            raise ReplayRunning("another shadow replay is running: wait for it to end")
        cur.execute(LEFTOVERS)
        for (schema,) in cur.fetchall():
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
    conn.commit()


@dataclass
class Progress:
    folded: int
    total: int
    elapsed_s: float

    @property
    def events_per_s(self) -> float:
        return self.folded / self.elapsed_s if self.elapsed_s else 0.0


async def _targets(consumer: AIOKafkaConsumer, pattern: str) -> dict[TopicPartition, int]:
    partitions = await topic_partitions(consumer, lambda topic: re.match(pattern, topic))
    ends = await consumer.end_offsets(partitions)
    return {tp: offset for tp, offset in ends.items() if offset > 0}


async def replay_in_place(
    settings: ProjectorSettings, on_progress: Callable[[Progress], None] = lambda p: None
) -> Progress:
    engine = make_engine(settings.database_url, pool_size=1)
    raw = engine.raw_connection()
    conn: Any = raw.driver_connection
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(settings.projection_name),))
            if not cur.fetchone()[0]:
                raise ProjectorRunning(
                    f"a projector is running for projection {settings.projection_name!r}: "
                    "stop it first"
                )
        conn.commit()
        consumer = folding_consumer(settings, group_id=None)
        await consumer.start()
        garbage_collector.settle_after_start_up()  # this process now does nothing but fold
        favour_the_writer()
        try:
            targets = await _targets(consumer, settings.topics.projected_pattern())
            with conn.cursor() as cur:
                cur.execute(CLEAR, (settings.projection_name,))
            conn.commit()
            writer = ProjectionWriter(conn, settings.projection_name)
            if not targets:
                return Progress(0, 0, 0.0)  # an empty log folds to empty tables
            consumer.assign(list(targets))
            await consumer.seek_to_beginning(*targets)
            done = await _fold_until(
                Projector(settings, consumer, writer), consumer, targets, on_progress
            )
            rebuild_registry(conn)
            return done
        finally:
            await consumer.stop()
    finally:
        raw.close()  # releases the lock
        engine.dispose()


async def _fold_until(
    projector: Projector,
    consumer: AIOKafkaConsumer,
    targets: dict[TopicPartition, int],
    on_progress: Callable[[Progress], None],
) -> Progress:
    total = sum(targets.values())
    started = time.monotonic()
    remaining = dict(targets)
    batches = EventTimeBatches(consumer, projector.settings.projector_max_batch, ends=targets)
    writing: asyncio.Task[None] | None = None  # batch N is written while N+1 is folded
    try:
        while remaining:
            batch = await batches.next_batch(timeout_ms=500, partitions=remaining)
            if batch:
                writing = await write_behind(writing, projector.write(projector.prepare(batch)))
            folded = 0
            for tp, end in targets.items():
                position = await batches.position(tp)
                folded += min(position, end)
                if tp in remaining and position >= end:  # (also past a trailing marker)
                    del remaining[tp]
                    consumer.pause(tp)
            on_progress(Progress(folded, total, time.monotonic() - started))
    finally:
        if writing is not None:
            await writing
    return Progress(total, total, time.monotonic() - started)


PROJECTED_TABLES = ("jobs", "items", "results", "projection_checkpoints")


def _create_shadow(conn: Any, schema: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
        for table in PROJECTED_TABLES:
            cur.execute(f'CREATE TABLE "{schema}".{table} (LIKE public.{table} INCLUDING ALL)')
            # LIKE copies no storage parameters (the items' fillfactor, migration 0006)
            cur.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", (table,))
            options = cur.fetchone()[0]
            if options:
                cur.execute(f'ALTER TABLE "{schema}".{table} SET ({", ".join(options)})')
    conn.commit()


def _swap_in(conn: Any, schema: str) -> None:
    retired = f"retired_{uuid.uuid4().hex[:8]}"
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (SWAP_LOCK,))
        cur.execute(f'CREATE SCHEMA "{retired}"')
        for table in PROJECTED_TABLES:
            cur.execute(f'ALTER TABLE public.{table} SET SCHEMA "{retired}"')
            cur.execute(f'ALTER TABLE "{schema}".{table} SET SCHEMA public')
        cur.execute("UPDATE projection_state SET epoch = epoch + 1 WHERE id = 1")
    conn.commit()
    with conn.cursor() as cur:
        cur.execute(f'DROP SCHEMA "{retired}" CASCADE')
        cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
    conn.commit()


async def replay_shadow(
    settings: ProjectorSettings, on_progress: Callable[[Progress], None] = lambda p: None
) -> Progress:
    engine = make_engine(settings.database_url, pool_size=2)
    admin_raw, shadow_raw = engine.raw_connection(), engine.raw_connection()
    admin: Any = admin_raw.driver_connection
    shadow: Any = shadow_raw.driver_connection
    schema = f"replay_{uuid.uuid4().hex[:8]}"
    swapped = lost = False
    try:
        _take_the_replay_lock(admin)
        _create_shadow(admin, schema)
        with shadow.cursor() as cur:
            cur.execute(f'SET search_path TO "{schema}", public')
        shadow.commit()
        writer = ProjectionWriter(shadow, settings.projection_name, follow_swaps=False)
        consumer = folding_consumer(settings, group_id=None)
        await consumer.start()
        garbage_collector.settle_after_start_up()  # this process now does nothing but fold
        favour_the_writer()
        try:
            projector = Projector(settings, consumer, writer)
            started = time.monotonic()
            folded, passes = 0, 0
            while True:  # to the head, then again for what arrived meanwhile
                targets = await _targets(consumer, settings.topics.projected_pattern())
                new = [tp for tp in targets if tp not in consumer.assignment()]
                if new:
                    consumer.assign(list(consumer.assignment() | set(targets)))
                    await consumer.seek_to_beginning(*new)
                behind = 0
                for tp, end in targets.items():
                    behind += end - await consumer.position(tp)
                if passes and behind <= settings.projector_max_batch:
                    break  # close enough: the live projector folds the rest within a second
                consumer.resume(*targets)
                folded = (await _fold_until(projector, consumer, targets, on_progress)).total
                passes += 1
            rebuild_registry(shadow)  # from the new items; the registry itself is shared
            _swap_in(admin, schema)
            swapped = True
            return Progress(folded, folded, time.monotonic() - started)
        finally:
            await consumer.stop()
    except DATABASE_ERRORS as exc:
        lost = True
        raise ReplayInterrupted(exc, swapped=swapped) from exc
    finally:
        if not swapped and not lost:  # (else the next replay drops it)
            with admin.cursor() as cur:
                cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.commit()
        for raw in (admin_raw, shadow_raw):
            if lost:
                raw.invalidate()  # dead: closing it would try a rollback on it
            else:
                raw.close()
        engine.dispose()
