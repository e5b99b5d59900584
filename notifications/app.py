"""Composition root of the notifier process (``batchctl notifier``).

Two loops: the intake reads the notifications topic (its own consumer group) into
deliveries, committing offsets behind them; the dispatcher sends what is due. Either
survives PostgreSQL or Kafka going away: the intake retries the same batch until it is
stored (its offsets uncommitted until then), the dispatcher claims again after a pause; a
Kafka client that failed ends the intake's session, and a new one starts with new clients.
"""

import asyncio
import contextlib
import logging
from datetime import timedelta

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from sqlalchemy import Engine

from notifications.dispatcher import Dispatcher
from notifications.intake import take_in
from notifications.settings import NotifierSettings
from runtime import metrics
from runtime.stopping import stop_on_signals, wait_or_stop
from storage.engine import make_engine
from streaming.clients import make_consumer, make_producer
from streaming.dead_letters import DeadLetterPublisher
from streaming.lag import track_lag

log = logging.getLogger(__name__)


async def run_notifier(settings: NotifierSettings, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        stop = stop_on_signals()
    metrics.serve(settings.metrics_port)
    engine = make_engine(settings.database_url, pool_size=4)
    limits = httpx.Limits(
        max_connections=settings.webhook_max_in_flight,
        max_keepalive_connections=settings.webhook_max_in_flight,
    )
    client = httpx.AsyncClient(
        trust_env=False,  # no proxy from the environment: the policy checks where it goes
        follow_redirects=False,
        timeout=settings.webhook_timeout_s,
        limits=limits,
    )
    dispatcher = Dispatcher(settings, engine, client)
    dispatching = asyncio.create_task(dispatcher.run(stop))
    try:
        backoff = 0.5
        while not stop.is_set():
            try:
                await _kafka_session(settings, engine, dispatcher, stop)
            except KafkaError as exc:
                # A consumer that gave up (aiokafka ends one on an unexpected error of its
                # group coordination, as when a broker dies under it): new clients, from
                # the committed offsets; deliveries already stored are not stored twice.
                log.warning("Kafka client failed (%r); a new session in %.1fs", exc, backoff)
                await wait_or_stop(stop, backoff)
                backoff = min(5.0, backoff * 2)
    finally:
        stop.set()
        await dispatching
        await client.aclose()
        engine.dispose()


async def _kafka_session(
    settings: NotifierSettings, engine: Engine, dispatcher: Dispatcher, stop: asyncio.Event
) -> None:
    consumer = make_consumer(
        settings,
        settings.topics.notifications,
        group_id=settings.group_id(),
        max_poll_records=500,
        metadata_max_age_ms=10_000,
    )
    producer = make_producer(settings)
    try:
        await _start_kafka(producer, consumer, stop)
        if stop.is_set():
            return
        log.info(
            "notifier reading %s; http allowed to: %s",
            settings.topics.notifications,
            settings.webhook_allowed_hosts or "(no host: https only)",
        )
        lag = asyncio.create_task(track_lag(consumer, settings.group_id()))
        try:
            letters = DeadLetterPublisher(producer, settings.topics.dlq)
            await _intake_loop(settings, engine, consumer, letters, dispatcher, stop)
        finally:
            lag.cancel()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await producer.stop()


async def _start_kafka(
    producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, stop: asyncio.Event
) -> None:
    """Start both clients, waiting for Kafka while it is away."""
    backoff = 0.5
    while not stop.is_set():
        try:
            await producer.start()
            await consumer.start()
            return
        except Exception as exc:
            log.warning("Kafka not reachable (%r); retrying in %.1fs", exc, backoff)
            with contextlib.suppress(Exception):
                await producer.stop()
            await wait_or_stop(stop, backoff)
            backoff = min(5.0, backoff * 2)


async def _intake_loop(
    settings: NotifierSettings,
    engine: Engine,
    consumer: AIOKafkaConsumer,
    dead_letters: DeadLetterPublisher,
    dispatcher: Dispatcher,
    stop: asyncio.Event,
) -> None:
    window = timedelta(seconds=settings.webhook_retry_window_s)
    policy = settings.policy
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=500, max_records=500)
        records = [r for rs in batch.values() for r in rs]
        if not records:
            continue
        backoff = 0.5
        while True:  # the same records until they are stored (nothing skipped)
            try:
                intake = await asyncio.to_thread(take_in, engine, policy, records, window)
                if intake.letters:
                    await dead_letters(intake.letters)
                break
            except Exception as exc:
                if stop.is_set():
                    return  # (not committed: read again at the next start)
                log.warning("storing deliveries failed (%r); retrying in %.1fs", exc, backoff)
                await wait_or_stop(stop, backoff)
                backoff = min(5.0, backoff * 2)
        if intake.deliveries:
            dispatcher.wake()
        if intake.letters:
            log.warning("dead-lettered %d notifications events", len(intake.letters))
        offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs}
        with contextlib.suppress(Exception):  # a failed commit: the events are read again,
            await consumer.commit(  # and their deliveries are already stored (no duplicate)
                {TopicPartition(tp.topic, tp.partition): o for tp, o in offsets.items()}
            )
