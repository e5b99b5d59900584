"""Throw-away databases on a PostgreSQL server, for tests and benchmarks: each run gets a
fresh database, migrated to head, and drops it afterwards."""

import time
import uuid

import psycopg2.errors
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from migrations.runner import upgrade
from storage.engine import make_engine

# Dropping waits out these: another role's backend still on the database (autovacuum,
# which runs as the server's superuser after a run has written a lot, cannot be terminated
# by a non-superuser: "must be a member of the role whose process is being terminated").
_BUSY = (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ObjectInUse)


def create_database(server_url: str, prefix: str) -> str:
    """A new database named ``prefix`` + a random suffix, migrated; its URL."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    admin = make_engine(server_url, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def drop_database(server_url: str, url: str, *, patience_s: float = 30.0) -> None:
    """Drop the database of ``url``, ending its sessions; retried while a backend that is
    not ours (autovacuum) is still on it."""
    name = make_url(url).database
    admin = make_engine(server_url, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + patience_s
    try:
        while True:
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                return
            except DBAPIError as exc:
                if not isinstance(exc.orig, _BUSY) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        admin.dispose()
