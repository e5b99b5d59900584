"""MicroBatcher: requests in flight share batches; one request can follow another's result."""

import asyncio
import time

from consumers.handlers.batching import MicroBatcher


async def test_concurrent_requests_share_a_batch_and_keep_their_answers():
    seen: list[list[int]] = []

    def double(batch: list[int]) -> list[int]:
        seen.append(batch)
        return [2 * n for n in batch]

    batcher: MicroBatcher[int, int] = MicroBatcher(double, name="double")
    batcher.start()
    try:
        assert await asyncio.gather(*(batcher.submit(n) for n in range(100))) == [
            2 * n for n in range(100)
        ]
        assert len(seen) < 100 and sorted(n for batch in seen for n in batch) == list(range(100))
    finally:
        await batcher.stop()


async def test_a_request_answered_into_a_future_made_elsewhere():
    first: MicroBatcher[int, int] = MicroBatcher(lambda b: [n + 1 for n in b], name="first")
    second: MicroBatcher[int, str] = MicroBatcher(lambda b: [f"<{n}>" for n in b], name="second")
    first.start()
    second.start()
    try:
        final: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        given_up: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        given_up.cancel()  # its item timed out: the batch skips it
        first.submit_nowait(41).add_done_callback(
            lambda done: second.answer_into(done.result(), final)
        )
        second.answer_into(7, given_up)
        assert await asyncio.wait_for(final, 5) == "<42>"
        assert given_up.cancelled()
    finally:
        await first.stop()
        await second.stop()
    stopped: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    second.answer_into(1, stopped)
    assert isinstance(stopped.exception(), Exception)


async def test_a_full_batch_queued_ahead_starts_without_the_event_loop():
    """While the event loop is busy, the executor goes on to a batch queued ahead."""
    started: list[float] = []

    def slow(batch: list[int]) -> list[int]:
        started.append(time.monotonic())
        time.sleep(0.1)
        return batch

    for queue_ahead in (True, False):
        started.clear()
        batcher: MicroBatcher[int, int] = MicroBatcher(
            slow, name="slow", max_batch=10, queue_ahead=queue_ahead
        )
        batcher.start()
        try:
            first = [batcher.submit_nowait(n) for n in range(10)]
            await asyncio.sleep(0.02)  # the first batch runs
            second = [batcher.submit_nowait(n) for n in range(10, 20)]
            await asyncio.sleep(0.02)
            time.sleep(0.4)  # the event loop is busy elsewhere
            busy_until = time.monotonic()
            assert await asyncio.gather(*first, *second) == list(range(20))
            assert len(started) == 2
            assert (started[1] < busy_until) is queue_ahead
        finally:
            await batcher.stop()
