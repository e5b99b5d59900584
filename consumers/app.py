"""Composition root of a worker process: settings, handler, Kafka clients, signals.

A producer that Kafka stops acknowledging (a fatal producer error) is not patched up: the
worker session ends without committing past it, and a new session with new clients resumes
from the committed offsets. Deterministic outcome ids make the repeats harmless. So does a
consumer that failed (a ``KafkaError`` out of it).
"""

import asyncio
import logging

from aiokafka.errors import KafkaError

from consumers.cancellations import CancellationWatcher
from consumers.settings import WorkerSettings
from consumers.worker import ReleaseOnRevoke, Worker
from jobtypes.registry import handler_class
from runtime import garbage_collector, metrics
from runtime.stopping import stop_on_signals
from storage.engine import make_engine
from streaming.batch_sender import BatchSender, DeliveryFailed
from streaming.clients import make_consumer, make_producer
from streaming.lag import track_lag

log = logging.getLogger(__name__)


async def run_worker(
    settings: WorkerSettings, job_type: str, stop: asyncio.Event | None = None
) -> None:
    handler = handler_class(job_type)()
    stop = stop or stop_on_signals()
    metrics.serve(settings.metrics_port)
    engine = make_engine(settings.database_url, pool_size=1)
    await handler.start()
    try:
        while not stop.is_set():
            try:
                await _session(settings, handler, engine, stop)
            except (DeliveryFailed, KafkaError) as exc:
                # outcomes not acknowledged, or a consumer aiokafka ended (an unexpected
                # error of its group coordination, as when a broker dies under it)
                log.error("Kafka failed the session (%r); reconnecting", exc)
                await asyncio.sleep(1)
    finally:
        await handler.stop()
        engine.dispose()
        log.info("worker for %s stopped", job_type)


async def _session(settings: WorkerSettings, handler, engine, stop: asyncio.Event) -> None:
    topics = settings.topics.items_of_every_lane(handler.job_type)
    consumer = make_consumer(
        settings,
        group_id=settings.group_id(handler.job_type),
        max_poll_records=settings.worker_max_batch,
    )
    # big enough to dead-letter an oversized event unchanged
    producer = make_producer(
        settings, max_request_size=max(4 << 20, 2 * settings.worker_max_event_bytes)
    )
    cancellations = CancellationWatcher(
        settings, engine, settings.projection_name, settings.worker_cancellation_ttl_s
    )
    sink = BatchSender(producer, linger_s=settings.worker_linger_s)
    worker = Worker(settings, handler, consumer, sink, cancellations)
    await producer.start()
    try:
        await sink.start([*settings.topics.all_outcomes(), settings.topics.dlq])
        await cancellations.start()
        consumer.subscribe(topics, listener=ReleaseOnRevoke(worker))
        await consumer.start()
        garbage_collector.settle_after_start_up()
        log.info(
            "worker for %s consuming %s as group %s (concurrency %d)",
            handler.job_type,
            " and ".join(topics),
            settings.group_id(handler.job_type),
            settings.worker_concurrency,
        )
        lag_tracking = asyncio.create_task(track_lag(consumer, settings.group_id(handler.job_type)))
        try:
            await worker.run(stop)
        finally:
            lag_tracking.cancel()
    finally:
        await consumer.stop()  # leaves the group: the partitions move on at once
        await cancellations.stop()
        await sink.close()
        await producer.stop()
        log.info("processed %s", dict(worker.counts))
