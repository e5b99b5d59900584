"""The API's Prometheus metrics, served on ``/metrics``: requests and their latency by route
template (never by raw path: job ids would make a series each), and items accepted."""

import time
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.metrics import LATENCY_BUCKETS

REQUESTS = Counter(
    "batch_api_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "batch_api_request_seconds",
    "Time to answer (to the end of the body)",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
ITEMS_ACCEPTED = Counter(
    "batch_api_items_accepted_total", "Items of accepted jobs, published", ["job_type"]
)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Pure ASGI (no per-request task): counts every HTTP response, including streamed
    ones, once its body is done."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "?")
            REQUESTS.labels(method, template, str(status[0])).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
