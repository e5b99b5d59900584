"""Key-ordered concurrency: records that share a lane (partition and key) run one after
another, in offset order; different lanes run concurrently on a fixed pool of runners.

A fixed pool (not a task per record) keeps the per-record overhead to a deque append; the
bound on queued records gives back-pressure to the fetch loop.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from consumers.deadlines import bind_runner_task

T = TypeVar("T")


class _Lane(Generic[T]):
    __slots__ = ("items", "key", "scheduled")

    def __init__(self, key: Hashable):
        self.key = key
        self.items: deque[T] = deque()
        self.scheduled = False


class KeyedDispatcher(Generic[T]):
    def __init__(
        self, process: Callable[[T], Awaitable[None]], *, concurrency: int, max_queued: int
    ):
        self._process = process
        self._concurrency = concurrency
        self._max_queued = max_queued
        self._lanes: dict[Hashable, _Lane[T]] = {}
        self._ready: asyncio.Queue[_Lane[T] | None] = asyncio.Queue()
        self._queued = 0
        self._busy = 0
        self._room = asyncio.Event()
        self._room.set()
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
            await self._room.wait()

    def submit_nowait(self, lane_key: Hashable, item: T) -> bool:
        """``submit`` without a coroutine (the fetch loop's per-record path): False, queuing
        nothing, when it would have to wait."""
        if self._queued >= self._max_queued:
            return False
        lane = self._lanes.get(lane_key)
        if lane is None:
            lane = self._lanes[lane_key] = _Lane(lane_key)
        lane.items.append(item)
        self._queued += 1
        self._idle.clear()
        if not lane.scheduled:
            lane.scheduled = True
            self._ready.put_nowait(lane)
        return True

    @property
    def queued(self) -> int:
        return self._queued

    async def drained(self) -> None:
        """Wait until nothing is queued or running."""
        await self._idle.wait()

    async def stop(self) -> None:
        for _ in self._runners:
            self._ready.put_nowait(None)
        await asyncio.gather(*self._runners, return_exceptions=True)

    async def _run(self) -> None:
        bind_runner_task()
        processed = 0
        while True:
            lane = await self._ready.get()
            if lane is None:
                return
            self._busy += 1
            try:
                while lane.items:
                    item = lane.items.popleft()
                    self._queued -= 1
                    if not self._room.is_set() and self._queued < self._max_queued:
                        self._room.set()
                    if self.discard(item):
                        continue
                    await self._process(item)
                    processed += 1
                    if processed % 256 == 0:
                        await asyncio.sleep(0)  # let the fetcher and the sender run
            finally:
                lane.scheduled = False
                if self._lanes.get(lane.key) is lane:
                    del self._lanes[lane.key]
                self._busy -= 1
                if self._busy == 0 and self._queued == 0:
                    self._idle.set()
