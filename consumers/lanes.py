"""Key-ordered concurrency: records that share a lane (partition and key) run one after
another, in offset order; different lanes run concurrently on a fixed pool of runners.

A fixed pool (not a task per record) and plain containers (no lane object, no
``asyncio.Queue``) keep the per-record overhead to a few dict and deque operations: the
lane of a record is busy while one of its records is queued or running; a record submitted
to a busy lane waits behind it, and the runner that finishes a record goes on to the next
of its lane. The bound on queued records gives back-pressure to the fetch loop.
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


class KeyedDispatcher(Generic[T]):
    def __init__(
        self, process: Callable[[T], Awaitable[None]], *, concurrency: int, max_queued: int
    ):
        self._process = process
        self._concurrency = concurrency
        self._max_queued = max_queued
        # Heads of free lanes, in submission order: (lane key, item).
        self._ready: deque[tuple[Hashable, T]] = deque()
        # Busy lanes: the records waiting behind the one queued or running (None: none yet).
        self._behind: dict[Hashable, deque[T] | None] = {}
        self._sleeping: deque[asyncio.Future[None]] = deque()  # idle runners
        self._queued = 0
        self._busy = 0
        self._stopping = False
        self._room = asyncio.Event()  # set while submissions are not waiting for room
        self._room.set()
        self._full = False  # someone waits for room (read per record: cheaper than the event)
        self._idle = asyncio.Event()
        self._idle.set()
        self._runners: list[asyncio.Task[None]] = []
        self.discard: Callable[[T], bool] = lambda item: False

    def start(self) -> None:
        self._runners = [asyncio.create_task(self._run()) for _ in range(self._concurrency)]

    async def submit(self, lane_key: Hashable, item: T) -> None:
        """Queue an item on its lane, waiting while ``max_queued`` items are queued."""
        while not self.submit_nowait(lane_key, item):
            self._room.clear()
            self._full = True
            await self._room.wait()

    def submit_nowait(self, lane_key: Hashable, item: T) -> bool:
        """``submit`` without a coroutine (the fetch loop's per-record path): False, queuing
        nothing, when it would have to wait."""
        if self._queued >= self._max_queued:
            return False
        self._queued += 1
        self._idle.clear()
        behind = self._behind
        if lane_key in behind:
            waiting = behind[lane_key]
            if waiting is None:
                behind[lane_key] = deque((item,))
            else:
                waiting.append(item)
            return True
        behind[lane_key] = None
        self._ready.append((lane_key, item))
        if self._sleeping:
            self._wake_one()
        return True

    def _wake_one(self) -> None:
        while self._sleeping:
            waiter = self._sleeping.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def queued(self) -> int:
        return self._queued

    async def drained(self) -> None:
        """Wait until nothing is queued or running."""
        await self._idle.wait()

    async def stop(self) -> None:
        self._stopping = True
        while self._sleeping:
            self._wake_one()
        await asyncio.gather(*self._runners, return_exceptions=True)

    async def _run(self) -> None:
        bind_runner_task()
        loop = asyncio.get_running_loop()
        ready, behind, process = self._ready, self._behind, self._process
        processed = 0
        while True:
            if not ready:
                if self._stopping:
                    return
                waiter = loop.create_future()
                self._sleeping.append(waiter)
                await waiter
                continue
            key, item = ready.popleft()
            self._busy += 1
            try:
                while True:  # the lane's records, in order
                    self._queued -= 1
                    if self._full and self._queued < self._max_queued:
                        self._full = False
                        self._room.set()
                    if not self.discard(item):
                        try:
                            await process(item)
                        except Exception:  # the lane goes on: its later records still run
                            log.exception("processing a record failed")
                        processed += 1
                        if processed % YIELD_EVERY == 0:
                            await asyncio.sleep(0)  # let the fetcher and the sender run
                    waiting = behind[key]
                    if not waiting:
                        del behind[key]
                        break
                    item = waiting.popleft()
            finally:
                self._busy -= 1
                if self._busy == 0 and self._queued == 0:
                    self._idle.set()
