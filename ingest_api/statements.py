"""The API's per-request statements, on asyncpg: the few single statements every submission
runs (a key's rate-limit token, the record of the accepted job, its mark once published, the
user's queued items), run on the event loop.

Through SQLAlchemy and psycopg2 each of them cost a thread hand-off and ~200-350 µs of the
API's CPU; here a statement is prepared once per connection and costs tens of
microseconds, and PostgreSQL plans it once. Everything else (pages, exports, the console)
stays on SQLAlchemy.

PostgreSQL away (refused, restarted, shut down; no connection from the pool and answer to
the statement within ``TIMEOUT_S``) is ``DatabaseUnavailable``: a 503 with Retry-After.
The pool opens connections as they are needed (none at start-up: the API starts while
PostgreSQL is down) and replaces a broken one."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from ingest_api.errors import DatabaseUnavailable
from storage.engine import normalise_url

TIMEOUT_S = 10.0
UNAVAILABLE = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # a connection closed under the statement
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
)
T = TypeVar("T")


def asyncpg_dsn(database_url: str) -> str:
    """The libpq-style DSN of a SQLAlchemy URL (``postgresql+psycopg2://...``)."""
    url = make_url(normalise_url(database_url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    """The statements leave no session state (no LISTEN, locks, cursors or settings beyond
    their transaction): a connection needs no reset query (a round trip) when released.
    An open transaction is still rolled back by the pool."""


class Statements:
    """A pool of asyncpg connections, and the statements run on it."""

    def __init__(self, database_url: str, *, max_size: int = 10):
        self.dsn = asyncpg_dsn(database_url)
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self.max_size,
            # a connection idle this long is closed (and opened again when needed)
            max_inactive_connection_lifetime=60.0,
            reset=_nothing_to_reset,
        )
        await self._pool  # with min_size 0 this connects nothing yet

    async def close(self) -> None:
        if self._pool is None:
            return
        try:
            await asyncio.wait_for(self._pool.close(), timeout=TIMEOUT_S)
        except TimeoutError:  # a connection that does not answer: closed without a goodbye
            self._pool.terminate()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await self._run(lambda conn: conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._run(lambda conn: conn.fetchrow(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run(lambda conn: conn.fetchval(sql, *args))

    async def execute(self, sql: str, *args: Any) -> str:
        return await self._run(lambda conn: conn.execute(sql, *args))

    async def _run(self, statement: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise DatabaseUnavailable("the API is not connected to PostgreSQL")
        try:
            # one deadline for the wait for a connection and the statement (a pool's own
            # acquire timeout runs the wait as a task of its own: costlier)
            async with asyncio.timeout(TIMEOUT_S), pool.acquire() as conn:
                return await statement(conn)
        except UNAVAILABLE as exc:
            raise DatabaseUnavailable("PostgreSQL is unavailable: try again shortly") from exc
