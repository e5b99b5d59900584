"""The coalescer: a lone call runs at once, calls arriving while a batch is in flight go
together, results reach their own callers, and one call's failure stays its own."""

import asyncio

import pytest

from ingest_api.coalescer import Coalescer
from ingest_api.errors import DatabaseUnavailable


class Recording:
    def __init__(self, fail_on: object = None, unavailable: bool = False):
        self.batches: list[list[int]] = []
        self.fail_on, self.unavailable = fail_on, unavailable

    async def run(self, arguments):  # type: ignore[no-untyped-def]
        self.batches.append(list(arguments))
        await asyncio.sleep(0.01)  # a round trip
        if self.unavailable:
            raise DatabaseUnavailable("down")
        if self.fail_on in arguments:
            raise ValueError(f"bad {self.fail_on}")
        return [a * 10 for a in arguments]


async def test_a_lone_call_runs_at_once_and_later_ones_share_the_next_batch():
    recording = Recording()
    times_ten = Coalescer(recording.run)
    assert await times_ten(1) == 10
    first = asyncio.ensure_future(times_ten(2))
    await asyncio.sleep(0)  # the first batch is in flight
    rest = [asyncio.ensure_future(times_ten(n)) for n in range(3, 8)]
    assert await asyncio.gather(first, *rest) == [20, 30, 40, 50, 60, 70]
    assert recording.batches == [[1], [2], [3, 4, 5, 6, 7]]


async def test_batches_are_bounded():
    recording = Recording()
    times_ten = Coalescer(recording.run, max_batch=2)
    assert await asyncio.gather(*(times_ten(n) for n in range(5))) == [0, 10, 20, 30, 40]
    assert [len(b) for b in recording.batches] == [2, 2, 1]


async def test_a_failing_batch_is_run_again_one_call_at_a_time():
    recording = Recording(fail_on=4)
    times_ten = Coalescer(recording.run)
    results = await asyncio.gather(*(times_ten(n) for n in range(3, 6)), return_exceptions=True)
    assert results[0] == 30 and results[2] == 50
    assert isinstance(results[1], ValueError)
    assert recording.batches == [[3, 4, 5], [3], [4], [5]]


async def test_the_database_away_fails_every_call_of_the_batch_at_once():
    recording = Recording(unavailable=True)
    times_ten = Coalescer(recording.run)
    results = await asyncio.gather(*(times_ten(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, DatabaseUnavailable) for r in results)
    assert recording.batches == [[0, 1, 2]]  # not retried one by one
    recording.unavailable = False
    assert await times_ten(9) == 90  # and the next call runs


async def test_a_cancelled_caller_does_not_stop_the_others():
    recording = Recording()
    times_ten = Coalescer(recording.run)
    calls = [asyncio.ensure_future(times_ten(n)) for n in range(3)]
    await asyncio.sleep(0)
    calls[1].cancel()
    assert await calls[0] == 0 and await calls[2] == 20
    with pytest.raises(asyncio.CancelledError):
        await calls[1]
