"""The per-user quota of queued items (``API_MAX_QUEUED_ITEMS_PER_USER``), checked at each
submission.

Counting a user's queued items is a query whose cost grows with the jobs the projector has
not folded yet, so each API process remembers each user's count for ``FRESH_S`` seconds,
plus the items it accepted from them since. While that estimate leaves the user under half
the cap, a submission is let through on it; nearer the cap, and always before refusing, the
count is read afresh. So a user far from the limit pays no query per request, and a refusal
is never based on a stale count. (The quota was never exact: two submissions at the same
moment may both pass; other API processes' acceptances within ``FRESH_S`` are not in the
estimate.)"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ingest_api.acceptance import Recorder
from ingest_api.errors import QueueFull
from ingest_api.queue_place import queued_items

FRESH_S = 1.0
MAX_USERS = 10_000  # users remembered; past it, the stale ones are forgotten


class QueuedItemsEstimates:
    """Each user's queued items as last read, plus what this process accepted since (used
    on the event loop only)."""

    def __init__(self, fresh_s: float = FRESH_S, max_users: int = MAX_USERS):
        self.fresh_s = fresh_s
        self.max_users = max_users
        self._known: dict[str, tuple[float, int]] = {}
        self._reading: dict[str, asyncio.Future[int]] = {}

    def lets_through(self, user: str, total: int, cap: int) -> bool:
        """Whether the estimate, read within ``fresh_s``, leaves room for ``total`` more
        items under half of ``cap`` (else the count is to be read afresh)."""
        known = self._known.get(user)
        if known is None or time.monotonic() - known[0] > self.fresh_s:
            return False
        return known[1] + total <= cap // 2

    async def read_afresh(self, user: str, count: Callable[[], Awaitable[int]]) -> int:
        """The user's count, read by ``count``: one read at a time per user, shared by every
        request that needs it meanwhile (a thousand requests a second must not each run
        it when the estimate goes stale)."""
        reading = self._reading.get(user)
        if reading is None:
            reading = asyncio.ensure_future(count())
            self._reading[user] = reading
            reading.add_done_callback(lambda done: self._read(user, done))
        # (shielded: a request that goes away does not cancel the others' read)
        return await asyncio.shield(reading)

    def _read(self, user: str, done: asyncio.Future[int]) -> None:
        if self._reading.get(user) is done:
            del self._reading[user]
        if not done.cancelled() and done.exception() is None:
            self.read(user, done.result())

    def read(self, user: str, queued: int) -> None:
        now = time.monotonic()
        if len(self._known) >= self.max_users and user not in self._known:
            stale = now - self.fresh_s
            self._known = {u: k for u, k in self._known.items() if k[0] >= stale}
        if len(self._known) < self.max_users or user in self._known:
            self._known[user] = (now, queued)

    def accepted(self, user: str, items: int) -> None:
        known = self._known.get(user)
        if known is not None:
            self._known[user] = (known[0], known[1] + items)


@dataclass(frozen=True)
class Records:
    """Where a submission is checked and recorded: the job records (and their statements),
    and the process's estimates of each user's queued items."""

    recorder: Recorder
    queued: QueuedItemsEstimates


async def check_quota(records: Records, user: str, total: int, cap: int) -> None:
    """``QueueFull`` if ``total`` more of the user's items would pass ``cap``. While the
    estimate leaves room under half the cap, no query; else the count is read afresh."""
    if records.queued.lets_through(user, total, cap):
        return
    queued = await records.queued.read_afresh(
        user, lambda: queued_items(records.recorder.statements, user)
    )
    if queued + total > cap:
        raise QueueFull(
            f"{queued} of your items are queued, and this job's {total} would pass the "
            f"limit of {cap}: wait for some to finish",
            queued_items=queued,
            total_items=total,
            max_queued_items=cap,
        )
