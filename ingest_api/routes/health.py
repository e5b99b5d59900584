"""/healthz: the process is alive. /readyz: Kafka and PostgreSQL answer."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    checks = {"postgres": "ok", "kafka": "ok"}
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        checks["postgres"] = f"unreachable: {type(exc).__name__}"
    producer = getattr(request.app.state, "producer", None)
    if producer is not None and not producer.client.cluster.brokers():
        checks["kafka"] = "no brokers known"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        status_code=200 if ready else 503,
        content={"status": "ready" if ready else "not ready", **checks},
    )
