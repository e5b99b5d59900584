"""/healthz: the process is alive. /readyz: Kafka and PostgreSQL answer right now."""

import asyncio

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, text

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0


class Readiness(BaseModel):
    status: str
    postgres: str
    kafka: str


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _ping_postgres(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@router.get(
    "/readyz",
    responses={503: {"description": "Kafka or PostgreSQL does not answer", "model": Readiness}},
    response_model=Readiness,
)
async def readyz(request: Request) -> JSONResponse:
    checks = {"postgres": "ok", "kafka": "ok"}
    try:
        await asyncio.wait_for(
            run_in_threadpool(_ping_postgres, request.app.state.engine), CHECK_TIMEOUT_S
        )
    except Exception as exc:
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
    producer = getattr(request.app.state, "producer", None)
    if producer is not None:
        try:  # a real metadata round trip, not the cached view
            await asyncio.wait_for(producer.client.fetch_all_metadata(), CHECK_TIMEOUT_S)
        except Exception as exc:
            checks["kafka"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        status_code=200 if ready else 503,
        content={"status": "ready" if ready else "not ready", **checks},
    )
