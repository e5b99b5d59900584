"""The API's statements on asyncpg: which commits wait for the disk, and PostgreSQL away
as a 503 rather than an error of the request."""

import uuid

import pytest
from sqlalchemy.orm import sessionmaker

from ingest_api import acceptance
from ingest_api.api_keys import create_key, hash_key
from ingest_api.errors import DatabaseUnavailable
from ingest_api.rate_limit import Admissions
from ingest_api.statements import Statements, asyncpg_dsn

RUNS = 60


async def _flushes(statements: Statements) -> int:
    """The cluster's WAL flushes so far, this connection's statistics included."""
    await statements.fetchval("SELECT pg_stat_force_next_flush()")
    # (a backend reports its statistics once idle; the flush is forced, not immediate)
    await statements.fetchval("SELECT pg_sleep(0.3)")
    return int(await statements.fetchval("SELECT wal_sync FROM pg_stat_wal"))


async def test_a_record_waits_for_the_disk_a_token_and_a_publication_mark_do_not(
    engine, database_url
):
    statements = Statements(database_url, max_size=1)  # one backend: its statistics
    await statements.open()
    try:
        version = await statements.fetchval("SHOW server_version_num")
        if int(version) < 150000:
            pytest.skip("needs PostgreSQL 15's pg_stat_force_next_flush")
        with sessionmaker(engine)() as session:
            key_hash = hash_key(create_key(session, user_id="flushes").secret)
        job_ids = [uuid.uuid4() for _ in range(RUNS)]

        admissions, recorder = Admissions(statements), acceptance.Recorder(statements)
        before = await _flushes(statements)
        for _ in range(RUNS):
            await admissions.admit(key_hash=key_hash, rate=1e6, burst=1_000_000)
        after_tokens = await _flushes(statements)
        for job_id in job_ids:
            await recorder.record(
                job_id=job_id,
                user_id="flushes",
                job_type="query",
                total_items=1,
                metadata={"run": 1},
                idempotency_key=None,
                digest=None,
            )
        after_records = await _flushes(statements)
        for job_id in job_ids:
            await recorder.mark_published(job_id=job_id)
        after_marks = await _flushes(statements)
    finally:
        await statements.close()
    # (other sessions may flush now and then: a few, not one per statement)
    assert after_tokens - before < RUNS // 3
    assert after_records - after_tokens >= RUNS
    assert after_marks - after_records < RUNS // 3


async def test_a_record_under_a_taken_idempotency_key_returns_the_first_job(database_url):
    statements = Statements(database_url, max_size=2)
    await statements.open()
    recorder = acceptance.Recorder(statements)
    user, key = f"idem-{uuid.uuid4().hex[:8]}", "the-key"
    fields = {"user_id": user, "job_type": "query", "metadata": None, "idempotency_key": key}
    try:
        first = await recorder.record(job_id=uuid.uuid4(), total_items=3, digest="a" * 64, **fields)
        second = await recorder.record(
            job_id=uuid.uuid4(), total_items=5, digest="b" * 64, **fields
        )
        assert second == first and first.total_items == 3 and first.published_at is None
        # in one statement: both get the first one's job; a job without a key its own
        racing = [
            acceptance.NewJob(uuid.uuid4(), user, "query", n, "bulk", None, f"race-{user}", "c")
            for n in (1, 2)
        ]
        alone = acceptance.NewJob(uuid.uuid4(), user, "query", 7, "bulk", {"m": "é"}, None, None)
        answers = await acceptance.record_all(statements, [*racing, alone])
        assert answers[0] == answers[1] and answers[0].job_id == racing[0].job_id
        assert answers[2].job_id == alone.job_id and answers[2].total_items == 7
        await recorder.mark_published(job_id=first.job_id)
        found = await recorder.find(user_id=user, idempotency_key=key)
        assert found is not None and found.published_at is not None
    finally:
        await statements.close()


async def test_postgresql_unreachable_is_database_unavailable():
    statements = Statements("postgresql://nobody@127.0.0.1:1/none")
    await statements.open()  # connects nothing yet: the API starts without PostgreSQL
    try:
        with pytest.raises(DatabaseUnavailable):
            await statements.fetchval("SELECT 1")
    finally:
        await statements.close()


def test_a_sqlalchemy_url_becomes_a_dsn_asyncpg_takes():
    dsn = asyncpg_dsn("postgresql+psycopg2://u:p%40ss@db.example:5433/batch?sslmode=require")
    assert dsn == "postgresql://u:p%40ss@db.example:5433/batch?sslmode=require"
    assert asyncpg_dsn("postgres://u@h/d") == "postgresql://u@h/d"
