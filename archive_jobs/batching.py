"""Coalesce the requests of concurrently handled items into batches run on a thread.

A handler that needs a database round trip or CPU-bound work per item would otherwise pay
for it per item on the event loop. A ``MicroBatcher`` gathers what the items in flight ask
for while the previous batch runs, hands the whole batch to a blocking function on a thread
of its own (database drivers release the GIL there) or in a process of its own (CPU-bound
work: no GIL to share), and answers each item with its own result. With one worker (the
default) batches run one at a time, in order; the next may wait queued in the executor.
"""

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Generic, TypeVar

from jobtypes.contract import PermanentError
from storage.errors import refused_as_data

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

# A batch function answers each request with its result, or with the exception that fails
# only that request; an exception it raises fails the whole batch, except a refusal of a
# value as data (``storage.errors.refused_as_data``): then the batch is split until the
# requests it belongs to are found, and only they fail, with ``PermanentError``
# ("invalid_input").
BatchFunction = Callable[[list[Req]], Sequence[Res | BaseException]]


def _die_with_parent() -> None:
    """In a batch process: end when the process that started it ends, even by SIGKILL
    (Linux); an orphan would keep running, and keep its parent's pipes open."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass  # not Linux: the child still ends when its call queue closes
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)


PR_SET_PDEATHSIG = 1


class BatcherStopped(Exception):
    """The batcher was stopped before the request's batch ran."""


class MicroBatcher(Generic[Req, Res]):
    def __init__(
        self,
        run_batch: BatchFunction[Req, Res],
        *,
        name: str,
        max_batch: int = 1000,
        in_process: bool = False,
        queue_ahead: bool = False,
        workers: int = 1,
    ):
        """``in_process``: run batches in a child process (``run_batch`` and the requests
        must then be picklable). ``queue_ahead``: while a batch runs, queue the next one as
        soon as a quarter of a batch is waiting, so that the executor starts it the moment
        the first ends, without waiting for the event loop to take the first one's results
        (a busy event loop takes tens of milliseconds to). ``workers``: batches run on this
        many threads or processes at once, so in no particular order (one: in order)."""
        self._run_batch = run_batch
        self._name = name
        self._max_batch = max_batch
        self._in_process = in_process
        self._workers = workers
        self._depth = workers + (1 if queue_ahead else 0)
        self._ahead_at = max(1, max_batch // 4)
        self._running: set[asyncio.Task[None]] = set()
        self._busy_since = 0.0
        self._pending: list[tuple[Req, asyncio.Future[Res]]] = []
        self._wake = asyncio.Event()
        self._executor: Executor | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.requests = 0
        self.busy_s = 0.0

    def start(self) -> None:
        if self._in_process:
            spawn = multiprocessing.get_context("spawn")  # never fork a running event loop
            self._executor = ProcessPoolExecutor(
                self._workers, mp_context=spawn, initializer=_die_with_parent
            )
            for _ in range(self._workers):  # spawn them now, not in an item's time
                self._executor.submit(self._run_batch, [])
        else:
            self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def stop(self) -> None:
        if self.batches:
            log.info(
                "%s: %d requests in %d batches (%.0f per batch), busy %.1fs",
                self._name,
                self.requests,
                self.batches,
                self.requests / self.batches,
                self.busy_s,
            )
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for run in list(self._running):
            run.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        for _, future in self._pending:
            if not future.done():
                future.set_exception(BatcherStopped(f"{self._name} stopped"))
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, request: Req) -> Res:
        if self._task is None:
            raise BatcherStopped(f"{self._name} is not running")
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if not self._running or len(self._pending) == self._ahead_at:
            self._wake.set()
        return await future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and (
                not self._running
                or (len(self._running) < self._depth and len(self._pending) >= self._ahead_at)
            ):
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                live = [(request, future) for request, future in batch if not future.done()]
                if not live:
                    continue
                self.batches += 1
                self.requests += len(live)
                if not self._running:
                    self._busy_since = time.monotonic()
                run = asyncio.create_task(self._run(live))
                self._running.add(run)
                run.add_done_callback(self._ran)

    def _ran(self, run: "asyncio.Task[None]") -> None:
        self._running.discard(run)
        if not self._running:
            self.busy_s += time.monotonic() - self._busy_since
        self._wake.set()  # room for the next batch

    async def _run(self, live: list[tuple[Req, "asyncio.Future[Res]"]]) -> None:
        """Run a batch and answer its requests. A batch refused as data is run again in
        halves, in order, until the requests it belongs to are alone: they fail at once,
        the others get their answers."""
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self._executor, self._run_batch, [request for request, _ in live]
            )
        except asyncio.CancelledError:
            for _, future in live:
                if not future.done():
                    future.set_exception(BatcherStopped(f"{self._name} stopped"))
            raise
        except Exception as exc:
            if refused_as_data(exc) and len(live) > 1:
                half = len(live) // 2
                await self._run(live[:half])
                await self._run(live[half:])
                return
            failure: Exception = exc
            if refused_as_data(exc):
                log.warning("%s: a request was refused as data: %r", self._name, exc)
                message = f"refused by the database: {type(exc).__name__}: {exc}".strip()
                failure = PermanentError("invalid_input", message)
            else:  # (a database down fails every batch: its handler and worker say so)
                log.info("%s: a batch of %d failed: %r", self._name, len(live), exc)
            for _, future in live:
                if not future.done():
                    future.set_exception(failure)
            return
        self._answer(live, results)

    @staticmethod
    def _answer(
        live: list[tuple[Req, "asyncio.Future[Res]"]], results: Sequence[Res | BaseException]
    ) -> None:
        for (_, future), result in zip(live, results, strict=True):
            if future.done():
                continue  # its item gave up (timeout, shutdown)
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
