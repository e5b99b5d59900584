"""Engine creation from a SQLAlchemy URL (``postgresql+psycopg2://...``)."""

import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError


def normalise_url(url: str) -> str:
    """Accept plain ``postgres://`` / ``postgresql://`` URLs as users write them."""
    for head in ("postgres://", "postgresql://"):
        if url.startswith(head):
            return "postgresql+psycopg2://" + url[len(head) :]
    return url


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    ping_after_idle_s: float | None = None,
) -> Engine:
    """An engine whose pool tests a connection before handing it out: every time (the
    default), or, with ``ping_after_idle_s``, only one that sat unused in the pool longer
    than that (a busy process then pays no round trip per checkout, and a connection that
    outlived a restart of PostgreSQL while idle is still replaced before use; one in use at
    the restart fails its statement, and the pool renews every older connection)."""
    engine = create_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=ping_after_idle_s is None,
    )
    if ping_after_idle_s is not None:
        _ping_when_idle(engine, ping_after_idle_s)
    return engine


_IDLE_SINCE = "idle_since"


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since <= idle_s:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            # the pool replaces the connection and tries again
            raise DisconnectionError(f"the connection did not answer: {exc}") from exc
