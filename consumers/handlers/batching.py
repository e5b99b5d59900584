"""Coalesce the requests of concurrently handled items into batches run on a thread.

A handler that needs a database round trip or CPU-bound work per item would otherwise pay
for it per item on the event loop. A ``MicroBatcher`` gathers what the items in flight ask
for while the previous batch runs, hands the whole batch to a blocking function on a thread
of its own (database drivers release the GIL there) or in a process of its own (CPU-bound
work: no GIL to share), and answers each item with its own result. One batch is in flight
per batcher; items keep their order.
"""

import asyncio
import ctypes
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")

# A batch function answers each request with its result, or with the exception that fails
# only that request; an exception it raises fails the whole batch.
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
    ):
        """``in_process``: run batches in a child process (``run_batch`` and the requests
        must then be picklable)."""
        self._run_batch = run_batch
        self._name = name
        self._max_batch = max_batch
        self._in_process = in_process
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
            self._executor = ProcessPoolExecutor(1, mp_context=spawn, initializer=_die_with_parent)
            self._executor.submit(self._run_batch, [])  # spawn it now, not in an item's time
        else:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._name)
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
        self._wake.set()
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                live = [(request, future) for request, future in batch if not future.done()]
                if not live:
                    continue
                self.batches += 1
                self.requests += len(live)
                started = loop.time()
                try:
                    results = await loop.run_in_executor(
                        self._executor, self._run_batch, [request for request, _ in live]
                    )
                except Exception as exc:
                    log.warning("%s: a batch of %d failed: %r", self._name, len(live), exc)
                    for _, future in live:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                finally:
                    self.busy_s += loop.time() - started
                for (_, future), result in zip(live, results, strict=True):
                    if future.done():
                        continue  # its item gave up (timeout, shutdown)
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
