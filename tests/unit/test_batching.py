"""MicroBatcher: requests in flight share batches; one request can follow another's result."""

import asyncio
import time

import pytest

from archive_jobs.batching import BatcherStopped, MicroBatcher
from jobtypes.contract import PermanentError


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


async def test_a_request_given_up_is_left_out_and_a_stopped_batcher_refuses():
    seen: list[list[int]] = []

    def slow(batch: list[int]) -> list[int]:
        seen.append(batch)
        time.sleep(0.1)
        return batch

    batcher: MicroBatcher[int, int] = MicroBatcher(slow, name="slow")
    batcher.start()
    try:
        first = asyncio.create_task(batcher.submit(1))
        await asyncio.sleep(0.02)  # its batch runs
        given_up = asyncio.create_task(batcher.submit(7))
        kept = asyncio.create_task(batcher.submit(8))
        await asyncio.sleep(0)
        given_up.cancel()  # its item timed out while it waited: the next batch skips it
        assert (await first, await kept) == (1, 8)
        assert given_up.cancelled()
        assert seen == [[1], [8]]
    finally:
        await batcher.stop()
    with pytest.raises(BatcherStopped):
        await batcher.submit(1)


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
            first = [asyncio.create_task(batcher.submit(n)) for n in range(10)]
            await asyncio.sleep(0.02)  # the first batch runs
            second = [asyncio.create_task(batcher.submit(n)) for n in range(10, 20)]
            await asyncio.sleep(0.02)
            time.sleep(0.4)  # the event loop is busy elsewhere
            busy_until = time.monotonic()
            assert await asyncio.gather(*first, *second) == list(range(20))
            assert len(started) == 2
            assert (started[1] < busy_until) is queue_ahead
        finally:
            await batcher.stop()


async def test_a_value_refused_as_data_fails_only_its_request_and_is_not_retried():
    """psycopg2 refuses a NUL in a string with a ValueError for the whole statement: the
    batch is run again in halves until the refused request is alone; its neighbours get
    their answers, and it fails at once (PermanentError: invalid_input)."""
    calls: list[list[str]] = []

    def look_up(batch: list[str]) -> list[str]:
        calls.append(batch)
        if any("\x00" in value for value in batch):
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return [value.upper() for value in batch]

    batcher: MicroBatcher[str, str] = MicroBatcher(look_up, name="look-up")
    batcher.start()
    try:
        values = [f"v{n}" for n in range(40)]
        values[13] = "bad\x00"
        results = await asyncio.gather(
            *(batcher.submit(value) for value in values), return_exceptions=True
        )
    finally:
        await batcher.stop()
    refused = results[13]
    assert isinstance(refused, PermanentError) and refused.code == "invalid_input"
    assert "NUL" in refused.message
    assert [r for i, r in enumerate(results) if i != 13] == [
        v.upper() for i, v in enumerate(values) if i != 13
    ]
    assert sum(batch == ["bad\x00"] for batch in calls) == 1  # alone once, never again


async def test_an_unavailable_database_still_fails_the_whole_batch_as_before():
    def down(batch: list[int]) -> list[int]:
        raise ConnectionError("the database is restarting")

    batcher: MicroBatcher[int, int] = MicroBatcher(down, name="down")
    batcher.start()
    try:
        results = await asyncio.gather(
            *(batcher.submit(n) for n in range(5)), return_exceptions=True
        )
    finally:
        await batcher.stop()
    assert all(isinstance(r, ConnectionError) for r in results)
