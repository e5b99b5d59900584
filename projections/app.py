"""Composition root of the projector process."""

import asyncio
import logging
import signal

from projections.projector import Projector
from projections.settings import ProjectorSettings
from projections.writer import ProjectionWriter
from storage.engine import make_engine
from streaming.clients import make_consumer

log = logging.getLogger(__name__)


async def run_projector(settings: ProjectorSettings, stop: asyncio.Event | None = None) -> None:
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    engine = make_engine(settings.database_url, pool_size=1)
    raw = engine.raw_connection()
    writer = ProjectionWriter(raw.driver_connection, settings.projection_name)  # type: ignore[arg-type]
    consumer = make_consumer(
        settings,
        group_id=settings.group_id(),
        max_poll_records=settings.projector_max_batch,
        metadata_max_age_ms=10_000,
    )
    projector = Projector(settings, consumer, writer)
    projector.subscribe()
    await consumer.start()
    log.info(
        "projector %r folding topics matching %s",
        settings.projection_name,
        settings.topics.projected_pattern(),
    )
    try:
        await projector.run(stop)
    finally:
        await consumer.stop()
        raw.close()
        engine.dispose()
        log.info("projector stopped after %d events", projector.counts["events"])
