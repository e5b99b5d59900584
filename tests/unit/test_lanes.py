import asyncio
import random

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
    dispatcher.start()
    for i in range(40):
        for key in "abcdefghij":
            await dispatcher.submit(key, (key, i))
    await dispatcher.drained()
    await dispatcher.stop()
    assert len(log) == 400
    for key in "abcdefghij":
        assert [i for k, i in log if k == key] == list(range(40))
    assert 1 < peak <= 8


async def test_discarded_items_are_skipped_and_queue_is_bounded():
    seen: list[int] = []
    gate = asyncio.Event()

    async def process(item: int) -> None:
        await gate.wait()
        seen.append(item)

    dispatcher = KeyedDispatcher(process, concurrency=1, max_queued=5)
    dispatcher.discard = lambda item: item % 2 == 1
    dispatcher.start()
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
    assert sorted(seen) == [0, 2, 4, 100]  # odd ones were discarded


async def test_a_record_that_raises_does_not_stop_its_lane_or_its_runner():
    seen: list[int] = []

    async def process(item: int) -> None:
        if item == 1:
            raise RuntimeError("boom")
        seen.append(item)

    dispatcher = KeyedDispatcher(process, concurrency=1, max_queued=10)
    dispatcher.start()
    for i in range(4):
        await dispatcher.submit("same lane", i)
    await asyncio.wait_for(dispatcher.drained(), 2)
    await dispatcher.submit("another lane", 9)
    await asyncio.wait_for(dispatcher.drained(), 2)
    await dispatcher.stop()
    assert seen == [0, 2, 3, 9]
