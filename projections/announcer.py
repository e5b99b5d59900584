"""Publishes the jobs' ``JobFinished`` events from the outbox the writer fills.

The writer records a job's announcement (``job_notifications``) in the transaction that
finishes the job; this publishes the rows not yet published, in the order they were made,
and marks them published once Kafka has acknowledged them. A crash between the two leaves
the rows unpublished, and they are published again: with the same deterministic event id
(job id and final status) and the same content, so a reader sees a duplicate by its id,
never a different event. Rows are claimed with ``FOR UPDATE SKIP LOCKED``: several
projector shards share the outbox without publishing a row twice at once.

It is woken after a write that announced jobs, and also looks every ``sweep_s`` (for rows
a replay made, or a process that died left).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from events.codec import encode
from events.models import JobFinished, JobLinks

log = logging.getLogger(__name__)

CLAIM = """
SELECT job_id, status, facts FROM job_notifications
WHERE published_at IS NULL ORDER BY created_at, job_id LIMIT %s
FOR UPDATE SKIP LOCKED
"""
MARK_PUBLISHED = "UPDATE job_notifications SET published_at = now() WHERE job_id = ANY(%s::uuid[])"
BATCH = 500


def job_finished(job_id: UUID, status: str, facts: dict[str, Any], api_url: str) -> JobFinished:
    """The event an outbox row stands for (the same every time it is made from the row)."""
    base = api_url.rstrip("/")
    fields = {k: v for k, v in facts.items() if k not in ("status", "finished_at")}
    return JobFinished.new(
        job_id=job_id,
        status=status,
        finished_at=datetime.fromisoformat(facts["finished_at"]),
        links=JobLinks(
            job=f"{base}/batch/jobs/{job_id}", items=f"{base}/batch/jobs/{job_id}/items"
        ),
        **fields,
    )


class Announcer:
    def __init__(
        self,
        connect: Callable[[], Any],
        producer: AIOKafkaProducer,
        topic: str,
        api_url: str,
        sweep_s: float = 5.0,
    ):
        """``connect``: a new psycopg2 connection (its own: the writer's is busy writing)."""
        self.connect = connect
        self.producer = producer
        self.topic = topic
        self.api_url = api_url
        self.sweep_s = sweep_s
        self.published = 0
        self._wake = asyncio.Event()
        self._conn: Any = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish what is pending, then again when woken or every ``sweep_s``; a failure
        (Kafka or PostgreSQL away) is logged and tried again at the next turn: it never
        stops the fold."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    while await self.publish_pending() == BATCH:
                        pass
                except Exception as exc:
                    log.warning("announcing finished jobs failed (%r); trying again", exc)
                    self._drop_connection()
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait(
                    {woken, stopping}, timeout=self.sweep_s, return_when="FIRST_COMPLETED"
                )
                woken.cancel()
        finally:
            stopping.cancel()
            self._drop_connection()

    async def publish_pending(self) -> int:
        """Publish up to ``BATCH`` unpublished announcements; return how many."""
        rows = await asyncio.to_thread(self._claim)
        try:
            events = []
            for job_id, status, facts in rows:
                try:
                    events.append(job_finished(job_id, status, facts, self.api_url))
                except (ValidationError, KeyError, ValueError, TypeError) as exc:
                    # (the writer makes them from the tables' values: a bug, not data)
                    log.error("job %s's announcement is not a valid JobFinished: %s", job_id, exc)
            sent = [
                await self.producer.send(self.topic, encode(e), key=str(e.job_id).encode())
                for e in events
            ]
            for delivery in sent:
                await delivery
            await asyncio.to_thread(self._mark, [row[0] for row in rows])
        except BaseException:
            await asyncio.to_thread(self._rollback)
            raise
        self.published += len(events)
        return len(rows)

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.connect()
        return self._conn

    def _claim(self) -> list[tuple[UUID, str, dict[str, Any]]]:
        conn = self._connection()
        with conn.cursor() as cur:
            cur.execute(CLAIM, (BATCH,))
            rows = cur.fetchall()
        if not rows:
            conn.rollback()
        return [(UUID(str(job_id)), status, facts) for job_id, status, facts in rows]

    def _mark(self, job_ids: list[UUID]) -> None:
        if not job_ids:
            return
        conn = self._connection()
        with conn.cursor() as cur:
            cur.execute(MARK_PUBLISHED, ([str(j) for j in job_ids],))
        conn.commit()

    def _rollback(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.rollback()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
