"""The web console: pages under ``/ui``, served by the API process from local templates and
assets (no build step, nothing from a CDN)."""

from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[1] / "static" / "console"


def install_console(app: FastAPI) -> None:
    from ingest_api.console import pages

    env = pages.templates.env
    env.filters["number"] = _number
    env.filters["duration"] = _duration
    env.filters["when"] = _when
    app.include_router(pages.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="console-static")
    app.state.console_charts = {}
    app.state.html_error_page = pages.error_page


def _number(value: float | int | None) -> str:
    return "—" if value is None else f"{round(value):,}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")
