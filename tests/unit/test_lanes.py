import asyncio
import random
from collections.abc import Awaitable

from consumers.lanes import KeyedDispatcher


async def test_same_lane_runs_in_order_and_lanes_run_concurrently():
    log: list[tuple[str, int]] = []
    running = 0
    peak = 0

    async def process(item: tuple[str, int]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(random.uniform(0, 0.003))
        log.append(item)
        running -= 1

    dispatcher = KeyedDispatcher(process, concurrency=8, max_queued=50)
    for i in range(40):
        for key in "abcdefghij":
            await dispatcher.submit(key, (key, i))
    await dispatcher.drained()
    await dispatcher.stop()
    assert len(log) == 400
    for key in "abcdefghij":
        assert [i for k, i in log if k == key] == list(range(40))
    assert 1 < peak <= 8


async def test_the_queue_is_bounded():
    seen: list[int] = []
    gate = asyncio.Event()

    async def process(item: int) -> None:
        await gate.wait()
        seen.append(item)

    dispatcher = KeyedDispatcher(process, concurrency=1, max_queued=5)
    await dispatcher.submit(0, 0)
    await asyncio.sleep(0.01)  # the only runner takes item 0 and waits at the gate
    for i in range(1, 6):
        await dispatcher.submit(i, i)
    assert dispatcher.queued == 5
    blocked = asyncio.ensure_future(dispatcher.submit(99, 100))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # back-pressure: the queue is full
    gate.set()
    await blocked
    await dispatcher.drained()
    await dispatcher.stop()
    assert sorted(seen) == [0, 1, 2, 3, 4, 5, 100]


async def test_a_record_that_raises_does_not_stop_its_lane_or_its_runner():
    seen: list[int] = []

    async def process(item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")
        seen.append(item)

    dispatcher = KeyedDispatcher(process, concurrency=1, max_queued=10)
    for i in range(4):
        await dispatcher.submit("same lane", i)
    await asyncio.wait_for(dispatcher.drained(), 2)
    await dispatcher.submit("another lane", 9)
    await asyncio.wait_for(dispatcher.drained(), 2)
    await dispatcher.stop()
    assert seen == [0, 2, 3, 9]


async def test_what_raises_out_of_start_is_reported_as_a_bug():
    bugs: list[BaseException] = []

    def start(item: int):  # type: ignore[no-untyped-def]
        if item == 1:
            raise RuntimeError("at start")
        if item == 2:
            return _raise_later()
        return None

    async def _raise_later() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("later")

    dispatcher = KeyedDispatcher(start, concurrency=2, max_queued=10, on_bug=bugs.append)
    for i in range(4):
        await dispatcher.submit(f"lane {i}", i)
    await asyncio.wait_for(dispatcher.drained(), 2)
    await dispatcher.stop()
    assert sorted(str(b) for b in bugs) == ["at start", "later"]


async def test_a_record_done_at_start_is_done_before_submit_returns():
    seen: list[int] = []

    def start(item: int) -> None:
        seen.append(item)  # nothing left to wait for

    dispatcher = KeyedDispatcher(start, concurrency=4, max_queued=10)
    tasks_before = len(asyncio.all_tasks())
    for i in range(100):
        assert dispatcher.submit_nowait(i % 3, i)
        assert seen[-1] == i  # ran in the caller
    assert len(asyncio.all_tasks()) == tasks_before  # no runner was needed
    assert dispatcher.queued == 0


async def test_what_is_left_of_a_record_is_carried_on_and_its_lane_waits_for_it():
    log: list[str] = []
    gate = asyncio.Event()

    async def rest_of(item: str) -> None:
        await gate.wait()
        log.append(f"end {item}")

    def start(item: str) -> Awaitable[None] | None:
        log.append(f"start {item}")
        if item == "a0":
            return rest_of(item)
        log.append(f"end {item}")
        return None

    dispatcher = KeyedDispatcher(start, concurrency=2, max_queued=10)
    assert dispatcher.submit_nowait("a", "a0")  # starts here, the rest waits at the gate
    assert dispatcher.submit_nowait("a", "a1")  # its lane is busy: queued behind it
    assert dispatcher.submit_nowait("b", "b0")  # another lane: done at once
    assert log == ["start a0", "start b0", "end b0"]
    assert dispatcher.queued == 1
    gate.set()
    await asyncio.wait_for(dispatcher.drained(), 2)
    assert log == ["start a0", "start b0", "end b0", "end a0", "start a1", "end a1"]
    await dispatcher.stop()


async def test_records_started_never_outnumber_the_concurrency():
    gate = asyncio.Event()
    started: list[int] = []

    async def rest() -> None:
        await gate.wait()

    def start(item: int) -> Awaitable[None]:
        started.append(item)
        return rest()

    dispatcher = KeyedDispatcher(start, concurrency=3, max_queued=10)
    for i in range(8):
        assert dispatcher.submit_nowait(i, i)
    assert started == [0, 1, 2] and dispatcher.queued == 5  # the others wait for a runner
    gate.set()
    await asyncio.wait_for(dispatcher.drained(), 2)
    assert sorted(started) == list(range(8))
    await dispatcher.stop()
