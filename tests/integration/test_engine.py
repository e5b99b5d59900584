"""The engine's pool tests only idle connections: a connection whose backend ended while
it sat unused is replaced before use; a busy one costs no round trip per checkout."""

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from storage.engine import make_engine


def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(engine, pid: int) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()


def test_an_idle_connection_whose_backend_ended_is_replaced_before_use(database_url):
    engine = make_engine(database_url, pool_size=1, max_overflow=0, ping_after_idle_s=0.2)
    killer = make_engine(database_url, pool_size=1)
    try:
        first = _backend_pid(engine)
        _terminate(killer, first)
        time.sleep(0.4)  # idle past the threshold: tested, found dead, replaced
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()
        killer.dispose()


def test_a_connection_used_a_moment_ago_is_not_tested(database_url):
    engine = make_engine(database_url, pool_size=1, max_overflow=0, ping_after_idle_s=60)
    killer = make_engine(database_url, pool_size=1)
    try:
        first = _backend_pid(engine)
        _terminate(killer, first)
        time.sleep(0.2)
        with pytest.raises(OperationalError):  # not tested: its statement finds it dead
            _backend_pid(engine)
        assert _backend_pid(engine) != first  # and the pool has renewed it
    finally:
        engine.dispose()
        killer.dispose()
