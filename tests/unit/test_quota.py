"""The queue quota's estimates: no query while far from the cap, a fresh count before any
refusal, and one count at a time per user however many requests need it."""

import asyncio
from types import SimpleNamespace

import pytest

from ingest_api import quota
from ingest_api.errors import QueueFull
from ingest_api.quota import QueuedItemsEstimates, Records, check_quota


@pytest.fixture
def counted(monkeypatch):  # type: ignore[no-untyped-def]
    """The users' queued items in PostgreSQL (here a dict), and the reads made of them."""
    state = {"queued": {}, "reads": []}

    async def queued_items(statements, user):  # type: ignore[no-untyped-def]
        state["reads"].append(user)
        await asyncio.sleep(0.01)  # a round trip
        return state["queued"].get(user, 0)

    monkeypatch.setattr(quota, "queued_items", queued_items)
    return state


def _records(fresh_s: float = 60) -> Records:
    recorder = SimpleNamespace(statements=None)  # (the count is faked above)
    return Records(recorder, QueuedItemsEstimates(fresh_s=fresh_s))  # type: ignore[arg-type]


async def test_far_from_the_cap_the_estimate_serves_and_counts_what_was_accepted(counted):
    records = _records()
    await check_quota(records, "alice", 10, cap=100)
    assert counted["reads"] == ["alice"]
    records.queued.accepted("alice", 10)
    await check_quota(records, "alice", 30, cap=100)  # 10 + 30 <= 50: no query
    assert counted["reads"] == ["alice"]
    records.queued.accepted("alice", 30)
    await check_quota(records, "alice", 20, cap=100)  # 40 + 20 > 50: counted afresh
    assert counted["reads"] == ["alice", "alice"]


async def test_a_refusal_is_always_on_a_fresh_count(counted):
    records = _records()
    counted["queued"]["bob"] = 95
    with pytest.raises(QueueFull) as refused:
        await check_quota(records, "bob", 10, cap=100)
    assert refused.value.details["queued_items"] == 95
    counted["queued"]["bob"] = 0  # the workers caught up: the next check reads again
    await check_quota(records, "bob", 10, cap=100)
    assert counted["reads"] == ["bob", "bob"]


async def test_one_count_at_a_time_per_user_shared_by_the_requests_waiting_for_it(counted):
    records = _records(fresh_s=0)  # always stale
    await asyncio.gather(*(check_quota(records, "carol", 1, cap=100) for _ in range(50)))
    assert counted["reads"] == ["carol"]
    await asyncio.gather(
        *(check_quota(records, user, 1, cap=100) for user in ["dave", "erin", "dave"])
    )
    assert sorted(counted["reads"]) == ["carol", "dave", "erin"]


async def test_a_stale_estimate_is_read_again(counted):
    records = _records(fresh_s=0.05)
    await check_quota(records, "frank", 1, cap=100)
    await check_quota(records, "frank", 1, cap=100)
    assert counted["reads"] == ["frank"]
    await asyncio.sleep(0.06)
    await check_quota(records, "frank", 1, cap=100)
    assert counted["reads"] == ["frank", "frank"]
