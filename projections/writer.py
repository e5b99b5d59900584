"""Writes a batch of coalesced changes to PostgreSQL in one transaction, set-based.

The batch is COPYed into session-local staging tables (``projections/copy_rows.py``), then a
handful of statements apply it: ``INSERT ... ON CONFLICT`` for jobs
and items, counters bumped only by rows whose status really changed from pending to
terminal (the ``RETURNING`` of a conditional upsert), job statuses derived from the
counters, results written when a job finishes, and the consumed positions stored last.
Committing all of it at once is what makes the effect exactly-once.
"""

import io
import logging
import random
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg2.errors
from psycopg2.extensions import AsIs
from psycopg2.extensions import connection as PgConnection

from projections.copy_rows import (
    ITEM_COLUMNS,
    JOB_COLUMNS,
    copy_into,
    item_lines,
    job_lines,
    staging_table,
)
from projections.fold import Changes

STAGING_DDL = "\n".join(
    [staging_table("stage_jobs", JOB_COLUMNS), staging_table("stage_items", ITEM_COLUMNS)]
)
COPY_JOBS = copy_into("stage_jobs", JOB_COLUMNS)
COPY_ITEMS = copy_into("stage_items", ITEM_COLUMNS)

UPSERT_JOBS = """
INSERT INTO jobs AS j (id, user_id, job_type, total_items, metadata, retry_of, created_at,
                       priority, cancel_requested_at, callback_url)
SELECT job_id, user_id, job_type, total_items, metadata, retry_of, created_at, priority,
       cancel_requested_at, callback_url
FROM stage_jobs ORDER BY job_id
ON CONFLICT (id) DO UPDATE SET
    user_id = COALESCE(j.user_id, EXCLUDED.user_id),
    priority = COALESCE(j.priority, EXCLUDED.priority),
    job_type = COALESCE(j.job_type, EXCLUDED.job_type),
    total_items = COALESCE(j.total_items, EXCLUDED.total_items),
    metadata = COALESCE(j.metadata, EXCLUDED.metadata),
    retry_of = COALESCE(j.retry_of, EXCLUDED.retry_of),
    created_at = COALESCE(j.created_at, EXCLUDED.created_at),
    cancel_requested_at = LEAST(j.cancel_requested_at, EXCLUDED.cancel_requested_at),
    callback_url = COALESCE(j.callback_url, EXCLUDED.callback_url)
"""

# Every item row of the batch in one statement, each row written once. An outcome is
# written first, and with its input when the item was also submitted in this batch (a
# replay or a backlog folded in event-time order brings most items with their outcome):
# one terminal row, not a pending row updated at once. Only rows that really go from pending
# (or absent) to terminal come out of RETURNING, so only real transitions move the job
# counters: duplicates and late outcomes change nothing. Then the submissions not already
# written with their outcome: a new pending row, or the input of an item whose outcome came
# first.
WRITE_ITEMS = """
WITH transitioned AS (
    INSERT INTO items AS i (job_id, item_index, status, input_data, created_at, output_data,
                            error_code, error_message, attempts, duration_ms, processed_at,
                            unsuccessful)
    SELECT job_id, item_index, status, input_data, submitted_at, output_data, error_code,
           error_message, attempts, duration_ms, processed_at,
           CASE WHEN status IN ('failed', 'cancelled') THEN true END
    FROM stage_items WHERE status IS NOT NULL ORDER BY job_id, item_index
    ON CONFLICT (job_id, item_index) DO UPDATE SET
        status = EXCLUDED.status, output_data = EXCLUDED.output_data,
        error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message,
        attempts = EXCLUDED.attempts, duration_ms = EXCLUDED.duration_ms,
        processed_at = EXCLUDED.processed_at, unsuccessful = EXCLUDED.unsuccessful
    WHERE i.status = 'pending'
    RETURNING i.job_id, i.item_index, i.status, i.duration_ms, i.processed_at
), counted AS (
    INSERT INTO jobs AS j (id, processed_items, success_items, failed_items, cancelled_items,
                           sum_duration_us, started_at, last_outcome_at)
    SELECT job_id, count(*),
           count(*) FILTER (WHERE status = 'success'),
           count(*) FILTER (WHERE status = 'failed'),
           count(*) FILTER (WHERE status = 'cancelled'),
           COALESCE(sum(round(duration_ms * 1000)::bigint), 0), min(processed_at),
           max(processed_at)
    FROM transitioned GROUP BY job_id ORDER BY job_id
    ON CONFLICT (id) DO UPDATE SET
        processed_items = j.processed_items + EXCLUDED.processed_items,
        success_items = j.success_items + EXCLUDED.success_items,
        failed_items = j.failed_items + EXCLUDED.failed_items,
        cancelled_items = j.cancelled_items + EXCLUDED.cancelled_items,
        sum_duration_us = LEAST(j.sum_duration_us::numeric + EXCLUDED.sum_duration_us,
                                9223372036854775807)::bigint,  -- saturates, never overflows
        started_at = LEAST(j.started_at, EXCLUDED.started_at),
        last_outcome_at = GREATEST(j.last_outcome_at, EXCLUDED.last_outcome_at)
)
INSERT INTO items AS i (job_id, item_index, status, input_data, created_at)
SELECT s.job_id, s.item_index, 'pending', s.input_data, s.submitted_at
FROM stage_items s
WHERE s.submitted AND NOT EXISTS (
    SELECT 1 FROM transitioned t WHERE t.job_id = s.job_id AND t.item_index = s.item_index)
ORDER BY s.job_id, s.item_index
ON CONFLICT (job_id, item_index) DO UPDATE SET
    input_data = EXCLUDED.input_data, created_at = EXCLUDED.created_at
WHERE i.created_at IS NULL
"""

# Job status from its counters; a final status never changes. Times come from the events
# themselves, so a replay reproduces them exactly.
# Job status from its counters; a final status never changes. Times come from the events
# themselves, so a replay reproduces them exactly. The rows are locked in id order first,
# and every value is computed from the row being updated: with several projectors, a row
# another one changed meanwhile is read again at its committed state (a status worked out
# from a snapshot of the counters could miss the other's last outcome and stay unfinished).
_NEW_STATUS = """CASE
        WHEN status IN ('completed', 'cancelled', 'failed') THEN status
        WHEN total_items IS NOT NULL AND processed_items >= total_items
            THEN CASE WHEN cancelled_items > 0 THEN 'cancelled' ELSE 'completed' END
        WHEN processed_items > 0 THEN 'processing'
        ELSE 'pending' END"""
REFRESH_JOBS = f"""
UPDATE jobs SET
    status = {_NEW_STATUS},
    progress_percent = CASE
        WHEN total_items IS NULL THEN 0
        WHEN total_items = 0 THEN 100
        ELSE LEAST(100, round(100.0 * processed_items / total_items, 2)) END,
    completed_at = CASE
        WHEN {_NEW_STATUS} IN ('completed', 'cancelled')
             AND status NOT IN ('completed', 'cancelled')
        THEN GREATEST(last_outcome_at, created_at) ELSE completed_at END
WHERE id IN (SELECT id FROM jobs WHERE id = ANY(%(ids)s::uuid[]) ORDER BY id FOR UPDATE)
"""

# A job's result is written once, when it finishes; with it, its announcement (the outbox
# ``job_notifications``, published to Kafka after the commit: ``projections.announcer``).
# The outbox is not a projected table (a shadow replay's search path finds the live one): a
# job announced once, by the live projector or a replay, is never announced again. RETURNING
# the jobs newly announced.
FINISH_JOBS = """
WITH finished AS (
INSERT INTO results (job_id, total_time_ms, avg_item_time_ms, success_rate, result_summary,
                     created_at)
SELECT j.id,
       GREATEST(0, EXTRACT(EPOCH FROM (j.completed_at - j.created_at)) * 1000),
       CASE WHEN j.success_items + j.failed_items > 0
            THEN j.sum_duration_us / 1000.0 / (j.success_items + j.failed_items) ELSE 0 END,
       CASE WHEN j.total_items > 0
            THEN round(j.success_items::numeric / j.total_items, 4) ELSE 1 END,
       jsonb_build_object(
           'counts', jsonb_build_object('success', j.success_items, 'failed', j.failed_items,
                                        'cancelled', j.cancelled_items),
           'top_errors', COALESCE((
               SELECT jsonb_agg(jsonb_build_object('code', e.error_code, 'count', e.n)
                                ORDER BY e.n DESC, e.error_code)
               FROM (SELECT error_code, count(*) AS n FROM items
                     WHERE items.job_id = j.id AND items.unsuccessful
                           AND items.status = 'failed'
                     GROUP BY error_code ORDER BY n DESC, error_code LIMIT 5) AS e),
               '[]'::jsonb)),
       j.completed_at
FROM jobs j
WHERE j.id = ANY(%(ids)s::uuid[]) AND j.status IN ('completed', 'cancelled')
ON CONFLICT (job_id) DO NOTHING
RETURNING job_id, success_rate, result_summary
)
INSERT INTO job_notifications AS n (job_id, status, facts)
SELECT j.id, j.status, jsonb_build_object(
    'user_id', j.user_id, 'job_type', j.job_type, 'status', j.status,
    'total_items', j.total_items, 'success_items', j.success_items,
    'failed_items', j.failed_items, 'cancelled_items', j.cancelled_items,
    'success_rate', f.success_rate, 'created_at', j.created_at, 'started_at', j.started_at,
    'finished_at', j.completed_at, 'top_errors', f.result_summary -> 'top_errors',
    'metadata', COALESCE(j.metadata, '{}'::jsonb))
FROM finished f JOIN jobs j ON j.id = f.job_id
ORDER BY j.id
ON CONFLICT (job_id) DO NOTHING
RETURNING n.job_id
"""

SAVE_POSITIONS = """
INSERT INTO projection_checkpoints AS c (projection, topic, partition, next_offset, updated_at)
VALUES %s
ON CONFLICT (projection, topic, partition) DO UPDATE SET
    next_offset = GREATEST(c.next_offset, EXCLUDED.next_offset), updated_at = now()
"""

LOAD_POSITIONS = """
SELECT topic, partition, next_offset FROM projection_checkpoints WHERE projection = %s
"""


EPOCH = "SELECT epoch FROM projection_state WHERE id = 1"
SWAP_LOCK = 0x61_6F_62_73  # advisory lock: writes share it, a table swap takes it alone
DEADLOCK_RETRIES = 5

log = logging.getLogger(__name__)


def _copy(cur: Any, statement: str, rows: str) -> None:
    """COPY in one read of the text: psycopg2 reads it in 8 KiB pieces by default, and each
    piece waits for the GIL, which the projector's fold of the next batch holds."""
    cur.copy_expert(statement, io.StringIO(rows), size=len(rows) + 1)


@dataclass(frozen=True, slots=True)
class StagedChanges:
    """A batch of changes in the form it is sent in: COPY text for the staging tables, the
    jobs to refresh, the positions to store."""

    job_rows: str
    item_rows: str
    job_ids: list[str]
    positions: list[tuple[str, str, int, int]]


class ProjectionSwitched(Exception):
    """A shadow replay swapped the tables in: resume from the new tables' positions."""


class ProjectionWriter:
    """Owns one database connection; ``write`` applies a batch and commits once.

    With ``follow_swaps`` (the live projector), every write transaction first takes the swap
    lock in shared mode and checks the tables' epoch: a swap that happened since this writer
    started raises ``ProjectionSwitched`` before anything is written.
    """

    def __init__(self, connection: PgConnection, projection: str, *, follow_swaps: bool = True):
        self.conn = connection
        self.projection = projection
        self.follow_swaps = follow_swaps
        with self.conn.cursor() as cur:
            # Safe without waiting for the WAL flush: rows and positions commit together, so
            # a transaction lost in a database crash is simply folded again from Kafka.
            cur.execute("SET synchronous_commit = off")
            cur.execute(STAGING_DDL)
            self.epoch = self._epoch(cur) if follow_swaps else None
        self.conn.commit()

    @staticmethod
    def _epoch(cur: Any) -> int:
        cur.execute(EPOCH)
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def load_positions(self) -> dict[tuple[str, int], int]:
        with self.conn.cursor() as cur:
            cur.execute(LOAD_POSITIONS, (self.projection,))
            rows = cur.fetchall()
        self.conn.commit()
        return {(topic, partition): offset for topic, partition, offset in rows}

    def stage(self, changes: Changes) -> StagedChanges:
        """The changes as the writer sends them. Pure Python, no I/O: the projector stages
        batch N+1 on its own thread while batch N is written."""
        job_ids = {job_id.int for job_id in changes.jobs}
        job_ids.update(job for (job, _), i in changes.items.items() if i.status)
        return StagedChanges(
            job_rows=job_lines(changes.jobs.values()) if changes.jobs else "",
            item_rows=item_lines(changes.items.values()) if changes.items else "",
            job_ids=sorted(str(UUID(int=job)) for job in job_ids),
            positions=[
                (self.projection, topic, partition, offset)
                for (topic, partition), offset in sorted(changes.positions.items())
            ],
        )

    def write(self, changes: Changes | StagedChanges) -> int:
        """Apply a batch in one transaction (staging it first if it is not staged); return
        how many jobs it finished and announced. A transaction PostgreSQL ends to break a
        deadlock with another projector's is written again (every statement is idempotent,
        and nothing of it was committed)."""
        staged = changes if isinstance(changes, StagedChanges) else self.stage(changes)
        for attempt in range(DEADLOCK_RETRIES):
            try:
                return self._write_once(staged)
            except psycopg2.errors.DeadlockDetected:
                if attempt == DEADLOCK_RETRIES - 1:
                    raise
                log.info("a deadlock with another projector's batch: writing it again")
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

    def _write_once(self, staged: StagedChanges) -> int:
        try:
            with self.conn.cursor() as cur:
                if self.follow_swaps:  # one round trip: the lock, then the epoch
                    cur.execute("SELECT pg_advisory_xact_lock_shared(%s); " + EPOCH, (SWAP_LOCK,))
                    row = cur.fetchone()
                    if (int(row[0]) if row else 0) != self.epoch:
                        raise ProjectionSwitched("the projected tables were swapped")
                announced = self._apply(cur, staged)
            self.conn.commit()
            return announced
        except BaseException:
            self.conn.rollback()
            raise

    def _apply(self, cur: Any, staged: StagedChanges) -> int:
        """The staging COPYs, then every statement in one round trip (with the lock and
        the commit, four round trips a batch instead of nine: it tells with a remote
        database; on the local one the projector benchmark did not move)."""
        statements: list[bytes] = []
        # Items before jobs, each in key order: the order every projector locks rows in.
        if staged.item_rows:
            _copy(cur, COPY_ITEMS, staged.item_rows)
            statements.append(cur.mogrify(WRITE_ITEMS))
        if staged.job_rows:
            _copy(cur, COPY_JOBS, staged.job_rows)
            statements.append(cur.mogrify(UPSERT_JOBS))
        if staged.positions:
            rows = b",".join(
                cur.mogrify("(%s, %s, %s, %s, now())", row) for row in staged.positions
            )
            statements.append(cur.mogrify(SAVE_POSITIONS, (AsIs(rows.decode()),)))
        if staged.job_ids:  # last: its RETURNING is what the round trip answers
            ids = {"ids": staged.job_ids}
            statements += [cur.mogrify(REFRESH_JOBS, ids), cur.mogrify(FINISH_JOBS, ids)]
        if not statements:
            return 0
        cur.execute(b";\n".join(statements))
        return len(cur.fetchall()) if staged.job_ids else 0
