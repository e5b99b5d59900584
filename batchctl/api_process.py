"""The app of one process of ``batchctl api --processes N``: uvicorn starts N processes on
one socket and each builds its own app (its own pool, producer and log setup); what they
share is in PostgreSQL (the keys' rate-limit buckets, accepted jobs, sessions)."""

from fastapi import FastAPI

from batchctl import logs


def app() -> FastAPI:
    from ingest_api.app import create_app

    logs.configure("api")
    return create_app()
