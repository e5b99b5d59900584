"""Composition root of the projector process.

Several projector processes of a projection share its partitions (a Kafka consumer group),
each storing the positions of the partitions it folds in the transaction of their rows; the
writes are ordered so that two never need the same rows in opposite orders, and a status is
worked out from a job's row as committed (``projections.writer``). Each session holds a
PostgreSQL advisory lock named after its projection in shared mode, so that an in-place
``replay`` (which takes it alone) can tell that a projector is running. A lost database
connection, or a Kafka client that failed, ends the session; the next one starts after a
growing delay and resumes from the positions stored with the rows, so the tables end exact
whatever was in flight.
"""

import asyncio
import contextlib
import logging
import zlib
from typing import Any

import psycopg2
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import InterfaceError, OperationalError

from projections.announcer import Announcer
from projections.event_time import STARVING_WAIT_MS
from projections.projector import Projector, favour_the_writer
from projections.settings import ProjectorSettings
from projections.writer import ProjectionSwitched, ProjectionWriter
from runtime import garbage_collector, metrics
from runtime.stopping import stop_on_signals, wait_or_stop
from storage.engine import make_engine
from streaming.clients import make_consumer, make_producer
from streaming.dead_letters import DeadLetterPublisher
from streaming.lag import track_lag

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0  # a database back is noticed within 2s; trying costs little
# Connection-level failures only: a SQL error is a bug, and retrying it would hide it.
DATABASE_ERRORS = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    OperationalError,
    InterfaceError,
)


def folding_consumer(settings: ProjectorSettings, **options: Any) -> AIOKafkaConsumer:
    """The consumer of a process that folds (the projector, a replay)."""
    return make_consumer(
        settings,
        max_poll_records=settings.projector_max_batch,
        # A fetch for partitions at their end waits this long for new records, and holds
        # back the next fetch of a partition whose records ran out: the event-time batches
        # wait for it (``projections.event_time``).
        fetch_max_wait_ms=STARVING_WAIT_MS,
        **options,
    )


def lock_key(projection: str) -> int:
    """The advisory lock that one projector of a projection holds."""
    return zlib.crc32(f"archiveorigin-batch projection {projection}".encode())


async def run_projector(settings: ProjectorSettings, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        stop = stop_on_signals()
    metrics.serve(settings.metrics_port)
    backoff = 0.5
    while not stop.is_set():
        try:
            await _session(settings, stop)
            return
        except ProjectionSwitched:
            log.info("a replay swapped the tables in; resuming from their positions")
            backoff = 0.5
            continue
        except DATABASE_ERRORS as exc:
            log.warning("database unavailable (%s); retrying in %.1fs", exc, backoff)
        except KafkaError as exc:
            # A client that gave up (aiokafka ends its consumer on an unexpected error of
            # its group coordination, as when a broker dies under it) is not patched up: a
            # new session with new clients resumes from the positions stored with the rows.
            log.warning("Kafka client failed (%r); a new session in %.1fs", exc, backoff)
        await wait_or_stop(stop, backoff)
        backoff = min(MAX_BACKOFF_S, backoff * 2)


async def _wait_for_lock(raw: Any, projection: str, stop: asyncio.Event) -> bool:
    """The projection's lock, shared with the other projectors (an in-place replay holds
    it alone while it rewrites the tables)."""
    key = lock_key(projection)
    waiting_logged = False
    while not stop.is_set():
        with raw.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock_shared(%s)", (key,))
            locked = cur.fetchone()[0]
        raw.commit()
        if locked:
            return True
        if not waiting_logged:
            log.info("an in-place replay of projection %r runs; waiting for it", projection)
            waiting_logged = True
        await wait_or_stop(stop, 2.0)
    return False


async def _session(settings: ProjectorSettings, stop: asyncio.Event) -> None:
    engine = make_engine(settings.database_url, pool_size=2)
    raw = engine.raw_connection()
    lost = False
    try:
        if not await _wait_for_lock(raw.driver_connection, settings.projection_name, stop):
            return
        writer = ProjectionWriter(raw.driver_connection, settings.projection_name)
        consumer = folding_consumer(
            settings, group_id=settings.group_id(), metadata_max_age_ms=10_000
        )
        producer = make_producer(settings)
        await producer.start()
        dead_letters = DeadLetterPublisher(producer, settings.topics.dlq)
        announcer = Announcer(
            engine.raw_connection,
            producer,
            settings.topics.notifications,
            settings.public_api_url,
            settings.projector_announce_sweep_s,
        )
        projector = Projector(settings, consumer, writer, dead_letters, announcer.wake)
        projector.subscribe()
        try:
            await consumer.start()
        except BaseException:
            await producer.stop()
            raise
        garbage_collector.settle_after_start_up()
        favour_the_writer()
        log.info(
            "projector %r folding topics matching %s",
            settings.projection_name,
            settings.topics.projected_pattern(),
        )
        lag_tracking = asyncio.create_task(track_lag(consumer, settings.group_id()))
        announcing_stop = asyncio.Event()
        announcing = asyncio.create_task(announcer.run(announcing_stop))
        try:
            await projector.run(stop)
        finally:
            lag_tracking.cancel()
            announcing_stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(announcing, 10)
            await consumer.stop()
            await producer.stop()
            log.info("projector session ended after %d events", projector.counts["events"])
    except DATABASE_ERRORS:
        lost = True
        raise
    finally:
        if lost:
            raw.invalidate()  # dead: returning it to the pool would try a rollback on it
        else:
            raw.close()  # also releases the advisory lock
        engine.dispose()
