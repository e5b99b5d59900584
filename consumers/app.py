"""Composition root of a worker process: settings, handler, Kafka clients, signals."""

import asyncio
import logging
import signal

from consumers.registry import handler_class
from consumers.settings import WorkerSettings
from consumers.worker import Worker
from streaming.clients import make_consumer, make_producer

log = logging.getLogger(__name__)


async def run_worker(
    settings: WorkerSettings, job_type: str, stop: asyncio.Event | None = None
) -> None:
    handler = handler_class(job_type)()
    stop = stop or _stop_on_signals()
    consumer = make_consumer(
        settings,
        settings.topics.items(job_type),
        group_id=settings.group_id(job_type),
        max_poll_records=settings.worker_max_batch,
    )
    producer = make_producer(settings)
    await handler.start()
    await producer.start()
    await consumer.start()
    log.info(
        "worker for %s consuming %s as group %s",
        job_type,
        settings.topics.items(job_type),
        settings.group_id(job_type),
    )
    try:
        await Worker(settings, handler, consumer, producer).run(stop)
    finally:
        await consumer.stop()  # leaves the group: partitions move on at once
        await producer.stop()
        await handler.stop()
        log.info("worker for %s stopped", job_type)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
