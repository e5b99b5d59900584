"""Key-ordered concurrency: records that share a lane (partition and key) run one after
another, in offset order; different lanes run concurrently, up to ``concurrency`` at once.

A record submitted to a free lane while fewer than ``concurrency`` records are unfinished
starts at once, in the caller: ``start(record)`` does what it can without waiting and
returns None when the record is done (a handler that never waits: no task, queue or
wake-up), or what is left of it, to await. What is left is carried on by a runner task,
which then goes on with the records waiting behind it in its lane and with lanes waiting
for a runner, and ends when none is left. Plain containers (no lane object, no
``asyncio.Queue``) keep these paths to a few dict and deque operations. The bound on queued
records gives back-pressure to the fetch loop.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from consumers.deadlines import bind_runner_task

T = TypeVar("T")
log = logging.getLogger(__name__)

YIELD_EVERY = 256  # records a runner processes before it lets the fetcher and sender run


def _log_bug(exc: BaseException) -> None:
    log.error("processing a record failed", exc_info=exc)


class KeyedDispatcher(Generic[T]):
    def __init__(
        self,
        start: Callable[[T], Awaitable[None] | None],
        *,
        concurrency: int,
        max_queued: int,
        on_bug: Callable[[BaseException], None] | None = None,
    ):
        self._start = start
        self._on_bug = on_bug or _log_bug
        self._concurrency = concurrency
        self._max_queued = max_queued
        # Heads of free lanes waiting for a runner (every runner busy), in submission order.
        self._ready: deque[tuple[Hashable, T]] = deque()
        # Busy lanes: the records waiting behind the one running or ready (None: none yet).
        self._behind: dict[Hashable, deque[T] | None] = {}
        self._runners: set[asyncio.Task[None]] = set()
        self._queued = 0  # records in ready lanes and behind busy ones
        self._room = asyncio.Event()  # set while submissions are not waiting for room
        self._room.set()
        self._full = False  # someone waits for room (read per record: cheaper than the event)
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, lane_key: Hashable, item: T, first: bool = False) -> None:
        """Queue an item on its lane, waiting while ``max_queued`` items are queued.
        ``first``: when its lane is free but every runner busy, it goes before the lanes
        already waiting for a runner (the interactive lane's records)."""
        while not self.submit_nowait(lane_key, item, first):
            self._room.clear()
            self._full = True
            await self._room.wait()

    def submit_nowait(self, lane_key: Hashable, item: T, first: bool = False) -> bool:
        """``submit`` without a coroutine (the fetch loop's per-record path): False, doing
        nothing, when it would have to wait."""
        if self.free(lane_key):
            rest = self._started(item)
            if rest is not None:
                self.adopt(lane_key, rest)
            return True
        if self._queued >= self._max_queued:
            return False
        if not self._queued:  # (while records are queued, the dispatcher is not idle)
            self._idle.clear()
        self._queued += 1
        behind = self._behind
        if lane_key in behind:
            waiting = behind[lane_key]
            if waiting is None:
                behind[lane_key] = deque((item,))
            else:
                waiting.append(item)
        else:
            behind[lane_key] = None
            if first:
                self._ready.appendleft((lane_key, item))
            else:
                self._ready.append((lane_key, item))
        return True

    def free(self, lane_key: Hashable) -> bool:
        """Whether a record of the lane would start at once: the caller may start it itself
        (and ``adopt`` what is left of it if it has to wait)."""
        return lane_key not in self._behind and len(self._runners) < self._concurrency

    def adopt(self, lane_key: Hashable, rest: Awaitable[None]) -> None:
        """Carry on a record of a free lane that waits: a runner finishes it, and its lane's
        later records wait behind it."""
        self._behind[lane_key] = None
        self._idle.clear()
        runner = asyncio.get_running_loop().create_task(self._carry(lane_key, rest))
        self._runners.add(runner)

    def _started(self, item: T) -> Awaitable[None] | None:
        try:
            return self._start(item)
        except Exception as exc:  # ``start`` settles its own errors: this is a bug in it
            self._on_bug(exc)
            return None

    @property
    def queued(self) -> int:
        return self._queued

    async def drained(self) -> None:
        """Wait until nothing is queued or running."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Wait for the runners (they end when nothing is left for them)."""
        await asyncio.gather(*self._runners, return_exceptions=True)

    async def _carry(self, lane_key: Hashable, rest: Awaitable[None] | None) -> None:
        """A runner: finish a started record, then the records behind it in its lane, then
        lanes waiting for a runner, until none is left."""
        bind_runner_task()
        ready, behind = self._ready, self._behind
        processed = 0
        try:
            while True:
                if rest is not None:
                    try:  # the lane goes on: its later records still run
                        await rest
                    except Exception as exc:  # (the same: a bug in what ``start`` gave)
                        self._on_bug(exc)
                processed += 1
                if processed % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let the fetcher and the sender run
                waiting = behind[lane_key]
                if waiting:
                    item = waiting.popleft()
                else:
                    del behind[lane_key]
                    if not ready:
                        return
                    lane_key, item = ready.popleft()
                self._queued -= 1
                if self._full and self._queued < self._max_queued:
                    self._full = False
                    self._room.set()
                rest = self._started(item)
        finally:
            self._runners.discard(asyncio.current_task())
            if not self._runners and self._queued == 0:
                self._idle.set()
