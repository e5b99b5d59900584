"""Sends the deliveries that are due, each attempt recorded.

A delivery is claimed with a lease (``lease_until``: past the attempt's timeout), so that
neither another notifier process nor this one after a crash sends it while an attempt is
under way; a notifier killed mid-attempt leaves the lease to expire, and the delivery is
sent again, with the same ``webhook-id``. Attempts run side by side up to
``WEBHOOK_MAX_IN_FLIGHT``, at most ``WEBHOOK_MAX_PER_HOST`` to one host: a slow or dead
receiver holds its own slots, never another's, and a delivery waiting for a retry holds
none.
"""

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import httpx
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from notifications import retry, sender, signing
from notifications.settings import NotifierSettings
from runtime.stopping import wait_or_stop
from storage.webhooks import secrets_of

log = logging.getLogger(__name__)

# Due deliveries, at most ``per_host`` a host counting those in flight here, oldest first;
# the outer WHERE is checked again on each row as committed, so two notifiers never lease
# the same one.
CLAIM = text(
    """
WITH inflight AS (
    SELECT * FROM unnest(CAST(:hosts AS text[]), CAST(:counts AS int[])) AS f(host, n)
), ranked AS (
    SELECT d.event_id, d.next_attempt_at,
           row_number() OVER (PARTITION BY d.host ORDER BY d.next_attempt_at, d.event_id)
               + COALESCE(f.n, 0) AS place
    FROM webhook_deliveries d LEFT JOIN inflight f ON f.host = d.host
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
          AND (d.lease_until IS NULL OR d.lease_until < now())
)
UPDATE webhook_deliveries d SET lease_until = now() + make_interval(secs => :lease)
FROM (SELECT event_id FROM ranked WHERE place <= :per_host
      ORDER BY next_attempt_at LIMIT :n) chosen
WHERE d.event_id = chosen.event_id AND d.status = 'pending'
      AND (d.lease_until IS NULL OR d.lease_until < now())
RETURNING d.event_id, d.user_id, d.url, d.host, d.body, d.attempts, d.retry_until
"""
)
RECORD_ATTEMPT = text(
    """
WITH attempt AS (
    INSERT INTO webhook_attempts (event_id, attempted_at, status_code, latency_ms, error,
                                  outcome, next_attempt_at)
    VALUES (:event_id, :attempted_at, :status_code, :latency_ms, :error, :outcome,
            :next_attempt_at)
)
UPDATE webhook_deliveries SET
    attempts = attempts + 1,
    status = CASE :outcome WHEN 'delivered' THEN 'delivered'
                           WHEN 'failed' THEN 'failed' ELSE 'pending' END,
    next_attempt_at = :next_attempt_at,
    delivered_at = CASE WHEN :outcome = 'delivered' THEN now() END,
    last_error = :error,
    lease_until = NULL
WHERE event_id = :event_id
"""
)


@dataclass(frozen=True)
class Due:
    event_id: UUID
    user_id: str
    url: str
    host: str
    body: bytes
    attempts: int
    retry_until: datetime


class Dispatcher:
    def __init__(self, settings: NotifierSettings, engine: Engine, client: httpx.AsyncClient):
        self.settings = settings
        self.engine = engine
        self.client = client
        self.policy = settings.policy
        self.in_flight: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._rng = random.Random()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    claimed = await self._claim()
                    backoff = 0.5
                except Exception as exc:  # PostgreSQL away: try again, a little later each time
                    log.warning("claiming deliveries failed (%r); retrying in %.1fs", exc, backoff)
                    claimed = []
                    await wait_or_stop(stop, backoff)
                    backoff = min(5.0, backoff * 2)
                    continue
                for due in claimed:
                    self._start(due)
                full = len(self.tasks) >= self.settings.webhook_max_in_flight
                if claimed and not full:
                    continue  # there may be more due
                # until woken (a new delivery), an attempt ends (a slot frees), or a retry
                # may be due
                woken = asyncio.ensure_future(self._wake.wait())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {woken, stopping, *self.tasks},
                    timeout=self.settings.webhook_poll_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                woken.cancel()
                stopping.cancel()
        finally:
            if self.tasks:  # attempts under way end within their timeout
                await asyncio.wait(self.tasks, timeout=self.settings.webhook_timeout_s + 1)

    async def _claim(self) -> list[Due]:
        free = self.settings.webhook_max_in_flight - len(self.tasks)
        if free <= 0:
            return []
        hosts = [h for h, n in self.in_flight.items() if n > 0]
        params = {
            "hosts": hosts,
            "counts": [self.in_flight[h] for h in hosts],
            "lease": self.settings.lease_s,
            "per_host": self.settings.webhook_max_per_host,
            "n": free,
        }

        def claim() -> list[Due]:
            with self.engine.begin() as conn:
                return [
                    Due(e, u, url, host, bytes(body), n, until)  # (bytea comes as a memoryview)
                    for e, u, url, host, body, n, until in conn.execute(CLAIM, params)
                ]

        return await asyncio.to_thread(claim)

    def _start(self, due: Due) -> None:
        self.in_flight[due.host] += 1
        task = asyncio.create_task(self.deliver(due))
        self.tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.discard(t)
            self.in_flight[due.host] -= 1
            if self.in_flight[due.host] <= 0:
                del self.in_flight[due.host]
            if not t.cancelled() and t.exception() is not None:
                log.error("delivery %s: %r", due.event_id, t.exception())

        task.add_done_callback(done)

    async def deliver(self, due: Due) -> None:
        """One attempt of a delivery, and its record (the attempt stands even if the record
        fails: the lease expires and the receiver gets it again, with the same id)."""
        settings = self.settings

        def keys() -> list[str]:
            with Session(self.engine) as session:
                return secrets_of(session, due.user_id).signing(datetime.now(UTC))

        signing_keys = await asyncio.to_thread(keys)
        attempted_at = datetime.now(UTC)
        webhook_id = str(due.event_id)
        headers = signing.headers(signing_keys, webhook_id, int(time.time()), due.body)
        result = await sender.attempt(
            self.client,
            self.policy,
            due.url,
            headers,
            due.body,
            timeout_s=settings.webhook_timeout_s,
            max_response_bytes=settings.webhook_max_response_bytes,
        )
        now = datetime.now(UTC)
        next_at = None
        error = result.error
        if result.delivered:
            outcome = "delivered"
        elif result.retry:
            next_at = retry.next_attempt_at(
                now,
                due.attempts + 1,
                due.retry_until,
                base_s=settings.webhook_retry_base_s,
                max_s=settings.webhook_retry_max_delay_s,
                retry_after=retry.retry_after_s(result.retry_after, now),
                rng=self._rng,
            )
            outcome = "retry" if next_at is not None else "failed"
            if next_at is None:
                error = f"{error}; no more attempts (the retry window is over)"
        else:
            outcome = "failed"
        self.counts[outcome] += 1
        log.info(
            "delivery %s to %s: %s (%s) in %.0f ms%s",
            webhook_id,
            due.host,
            outcome,
            result.status_code or error,
            result.latency_ms,
            f", next at {next_at:%H:%M:%S}" if next_at else "",
        )
        record = {
            "event_id": due.event_id,
            "attempted_at": attempted_at,
            "status_code": result.status_code,
            "latency_ms": result.latency_ms,
            "error": error,
            "outcome": outcome,
            "next_attempt_at": next_at,
        }

        def store() -> None:
            with self.engine.begin() as conn:
                conn.execute(RECORD_ATTEMPT, record)

        for wait_s in (0.5, 1.0, 2.0, 4.0, 0.0):
            try:
                await asyncio.to_thread(store)
                return
            except Exception as exc:
                log.warning("recording an attempt of %s failed (%r)", webhook_id, exc)
                if wait_s:
                    await asyncio.sleep(wait_s)
