"""Many requests' statements as one: group commit for the API's per-request writes.

Each caller awaits its own result; while a batch is in flight, later arrivals wait and go
together in the next one. Alone, a call runs at once (no waiting for company: a lone
request is as fast as before); under load, one round trip, one statement and one commit
serve many requests, which is what lets two cores take a thousand small submissions a
second.

A batch that fails for a reason other than PostgreSQL being away (``DatabaseUnavailable``,
which every caller of the batch gets) is run again one call at a time, so one request's
bad data fails that request only."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from ingest_api.errors import DatabaseUnavailable

A = TypeVar("A")
R = TypeVar("R")

MAX_BATCH = 256


class Coalescer(Generic[A, R]):
    """Calls ``run(arguments)`` (results in the same order) for the waiting callers."""

    def __init__(
        self, run: Callable[[Sequence[A]], Awaitable[Sequence[R]]], max_batch: int = MAX_BATCH
    ):
        self._run = run
        self.max_batch = max_batch
        self._waiting: list[tuple[A, asyncio.Future[R]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def __call__(self, argument: A) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((argument, future))
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._settle(batch)
        finally:
            self._draining = None

    async def _settle(self, batch: list[tuple[A, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([argument for argument, _ in batch])
            if len(results) != len(batch):
                raise AssertionError(f"{len(results)} results for {len(batch)} calls")
        except DatabaseUnavailable as exc:
            for _, future in batch:
                _fail(future, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            for one in batch:  # whose was it? each alone
                await self._settle([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # (its request may have been cancelled meanwhile)
                future.set_result(result)


def _fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
