"""Composition root of the API process: ``create_app`` wires settings, the database and the
publisher (Kafka by default; tests may pass another)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from ingest_api import metrics
from ingest_api.acceptance import Recorder
from ingest_api.console import install_console
from ingest_api.errors import install_error_handlers
from ingest_api.metrics import MetricsMiddleware
from ingest_api.openapi import install_openapi
from ingest_api.publisher import EventPublisher, KafkaEventPublisher
from ingest_api.quota import QueuedItemsEstimates, Records
from ingest_api.rate_limit import Admissions
from ingest_api.routes import health, jobs, webhooks
from ingest_api.routes.docs import install_docs
from ingest_api.settings import ApiSettings
from ingest_api.statements import Statements
from ingest_api.stream_slots import StreamSlots
from runtime import garbage_collector
from storage.engine import make_engine
from streaming.clients import make_producer

PING_IDLE_S = 1.0  # a pooled connection unused this long is tested before use


def create_app(
    settings: ApiSettings | None = None, publisher: EventPublisher | None = None
) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Pools that never open a connection beyond their size: a request waits for one
        # rather than paying for a new PostgreSQL backend (milliseconds of its CPU) that the
        # pool would close again at once.
        engine = make_engine(
            settings.database_url, pool_size=20, max_overflow=0, ping_after_idle_s=PING_IDLE_S
        )
        app.state.engine = engine
        app.state.sessions = sessionmaker(engine, expire_on_commit=False)
        statements = Statements(settings.database_url)
        await statements.open()
        app.state.admissions = Admissions(statements)
        app.state.records = Records(Recorder(statements), QueuedItemsEstimates())
        app.state.settings = settings
        app.state.stream_slots = StreamSlots(
            settings.api_max_streams_per_key, settings.api_max_streams
        )
        producer = None
        if publisher is None:
            timeout_ms = int(settings.api_publish_timeout_s * 1000)
            producer = make_producer(settings, request_timeout_ms=timeout_ms)
            await producer.start()
            app.state.producer = producer
            kafka = KafkaEventPublisher(
                producer,
                _topics(settings),
                timeout_s=settings.api_publish_timeout_s,
                max_event_bytes=settings.api_max_event_bytes,
                linger_s=settings.api_publish_linger_s,
            )
            await kafka.start()
            app.state.publisher = kafka
        else:
            app.state.publisher = publisher
        garbage_collector.settle_after_start_up()
        try:
            yield
        finally:
            if producer is not None:
                await app.state.publisher.close()
                await producer.stop()
            engine.dispose()
            await statements.close()

    app = FastAPI(
        title="Archive Origin batch operations",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from local assets instead: ``routes.docs``
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware)
    app.include_router(jobs.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_docs(app)
    install_openapi(app)
    install_console(app)
    return app


def _topics(settings: ApiSettings) -> list[str]:
    """Every topic the API publishes to."""
    from jobtypes.registry import job_types

    topics = settings.topics
    return [topics.jobs, *(topic for t in job_types() for topic in topics.items_of_every_lane(t))]
