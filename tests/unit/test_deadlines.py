"""Handler deadlines: one watchdog cancels a task past its deadline, and only such a task."""

import asyncio
import time

from consumers.deadlines import Deadlines


async def _armed_sleep(deadlines: Deadlines, timeout_s: float, sleep_s: float) -> float:
    task = asyncio.current_task()
    assert task is not None
    started = time.monotonic()
    deadlines.arm(task, timeout_s)
    try:
        await asyncio.sleep(sleep_s)
    except asyncio.CancelledError:
        assert deadlines.disarm(task), "cancelled, but not for its deadline"
        return time.monotonic() - started
    assert not deadlines.disarm(task)
    return -1.0


async def test_only_tasks_past_their_deadline_are_cancelled():
    deadlines = Deadlines(interval_s=0.01)
    deadlines.start()
    try:
        slow = asyncio.create_task(_armed_sleep(deadlines, 30.0, 0.3))
        await asyncio.sleep(0.05)  # the watchdog has seen a far deadline ...
        # ... and a later, nearer one must still be honoured
        short = asyncio.create_task(_armed_sleep(deadlines, 0.1, 5.0))
        quick = asyncio.create_task(_armed_sleep(deadlines, 0.05, 0.01))
        cancelled_after = await short
        assert 0.1 <= cancelled_after < 0.3
        assert await quick == -1.0  # finished in time: not cancelled
        assert await slow == -1.0
    finally:
        await deadlines.stop()


async def test_many_armed_tasks_expire_together():
    deadlines = Deadlines(interval_s=0.01)
    deadlines.start()
    try:
        tasks = [asyncio.create_task(_armed_sleep(deadlines, 0.05, 5.0)) for _ in range(500)]
        results = await asyncio.wait_for(asyncio.gather(*tasks), 2.0)
        assert all(0.05 <= r < 1.0 for r in results)
    finally:
        await deadlines.stop()
