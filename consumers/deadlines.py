"""Handler timeouts without a timer per call.

``asyncio.timeout`` schedules and cancels a timer for every handler call, which costs more
than a no-op handler. Here each runner task arms its deadline in a dict before calling the
handler and disarms it right after; one watchdog looks at the armed deadlines every
``interval_s`` and cancels a task that is past its deadline. A task can only be suspended
inside the handler while armed, so the cancellation lands in the handler, as with
``asyncio.timeout``. Deadlines are therefore kept to within ``interval_s``.
"""

import asyncio
import time
from contextvars import ContextVar

# The task a long-lived runner coroutine runs in, bound once when the runner starts:
# asyncio.current_task() is a Python-level lookup on every call in CPython 3.11.
_runner_task: ContextVar[asyncio.Task[object] | None] = ContextVar("runner_task", default=None)


def bind_runner_task() -> None:
    """Call at the start of a task that will call handlers many times."""
    _runner_task.set(asyncio.current_task())


def current_task() -> asyncio.Task[object]:
    task = _runner_task.get() or asyncio.current_task()
    assert task is not None, "handlers are called from a task"
    return task


class Deadlines:
    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self._armed: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._next_due = float("inf")  # no armed deadline is earlier than this

    def start(self) -> None:
        self._watchdog = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)

    def arm(self, task: asyncio.Task[object], timeout_s: float) -> None:
        deadline = self._armed[task] = time.monotonic() + timeout_s
        if deadline < self._next_due:
            self._next_due = deadline

    def disarm(self, task: asyncio.Task[object]) -> bool:
        """Disarm; True when the deadline had expired (the task was cancelled for it)."""
        del self._armed[task]
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            now = time.monotonic()
            if now < self._next_due:
                continue  # thousands of items may be armed: look at them only when one is due
            self._next_due = float("inf")
            for task, deadline in list(self._armed.items()):
                if deadline > now:
                    self._next_due = min(self._next_due, deadline)
                elif task not in self._expired:
                    self._expired.add(task)
                    task.cancel()
