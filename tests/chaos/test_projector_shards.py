"""Several projector processes share the partitions (one consumer group): a job's submission,
its items and their outcomes are on different topics, so different shards fold them, at the
same moments. With churn while the events come (one shard leaving with SIGTERM, another
killed with kill -9, a new one joining) the tables end exact, and identical to what one
projector alone folds from the same topics (an in-place replay)."""

import asyncio
import signal
import threading
import uuid

import pytest
from sqlalchemy import text

from events.codec import encode
from streaming.groups import inspect_groups
from tests import factories as f
from tests.integration.conftest import job_row, publish_many, wait_for, wait_fully_folded
from tests.integration.test_poison_corpus import _batchctl, _rows

JOBS, ITEMS_PER_JOB = 30, 4_000  # 30 x (1 + 2 x 4,000) = 240,030 events


def _messages(settings, job_id: uuid.UUID, events: list) -> list[tuple[str, bytes, bytes]]:  # type: ignore[no-untyped-def,type-arg]
    """A job's events on their topics: its submission and outcomes keyed by job, its items
    by item (so they spread over every partition of the items topic)."""
    topics, job_key, messages = settings.topics, str(job_id).encode(), []
    for i, event in enumerate(events):
        if event.event_type == "JobSubmitted":
            messages.append((topics.jobs, job_key, encode(event)))
        elif event.event_type == "ItemSubmitted":
            messages.append((topics.items("query"), f"{job_id}:{i}".encode(), encode(event)))
        else:
            messages.append((topics.outcomes, job_key, encode(event)))
    return messages


def _backlog(settings) -> tuple[list[tuple[str, bytes, bytes]], list[uuid.UUID]]:  # type: ignore[no-untyped-def]
    messages, job_ids = [], []
    for _ in range(JOBS):
        job_id, events = f.mixed_job(ITEMS_PER_JOB)
        job_ids.append(job_id)
        messages += _messages(settings, job_id, events)
    return messages, job_ids


def _folded(engine, job_ids) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COALESCE(sum(processed_items), 0) FROM jobs WHERE id = ANY(:ids)"),
                {"ids": job_ids},
            ).scalar_one()
        )


def _assert_exact(engine, job_ids) -> None:  # type: ignore[no-untyped-def]
    failed = sum(1 for i in range(ITEMS_PER_JOB) if i % 5 == 3 or i % 7 == 6)
    with engine.connect() as conn:
        per_job = conn.execute(
            text(
                "SELECT job_id, count(*), count(*) FILTER (WHERE status = 'success'),"
                " count(*) FILTER (WHERE input_data IS NOT NULL) FROM items"
                " WHERE job_id = ANY(:ids) GROUP BY job_id"
            ),
            {"ids": job_ids},
        ).all()
        results = conn.execute(
            text("SELECT count(*) FROM results WHERE job_id = ANY(:ids)"), {"ids": job_ids}
        ).scalar_one()
    assert len(per_job) == JOBS
    for _, rows, success, with_input in per_job:
        assert (rows, success, with_input) == (ITEMS_PER_JOB, ITEMS_PER_JOB - failed, ITEMS_PER_JOB)
    for job_id in job_ids:
        job = job_row(engine, job_id)
        assert job is not None and job["status"] == "completed", job
        assert (job["processed_items"], job["success_items"], job["failed_items"]) == (
            ITEMS_PER_JOB,
            ITEMS_PER_JOB - failed,
            failed,
        )
        assert job["completed_at"] == f.at(1 + (ITEMS_PER_JOB - 1) * 0.1)
    assert results == JOBS


class _GroupWatch:
    """The most members the projectors' consumer group had, sampled in a thread."""

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        self.settings, self.most = settings, 0
        self.group = settings.topics.projector_group()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                (report,) = asyncio.run(
                    inspect_groups(self.settings, {self.group: [self.settings.topics.jobs]})
                )
                self.most = max(self.most, len(report.members))
            except Exception:
                pass  # a rebalance in progress: the next sample
            self._stop.wait(0.3)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


@pytest.mark.parametrize("shards", [2, 3])
def test_projector_shards_with_churn_end_as_one_projector_folds(
    shards, kafka_settings, engine, processes, stack_env
):
    messages, job_ids = _backlog(kafka_settings)
    thirds = [messages[i * len(messages) // 3 : (i + 1) * len(messages) // 3] for i in range(3)]
    members = _GroupWatch(kafka_settings)
    projectors = [processes.start("projector") for _ in range(shards)]
    wait_for(lambda: members.most >= shards, 60, f"{shards} projectors in the group")

    # The events come while the shards change: a third, then one shard leaves with SIGTERM,
    # a third, then one is killed with kill -9 and a new one joins, the last third.
    asyncio.run(publish_many(kafka_settings, thirds[0]))
    wait_for(lambda: _folded(engine, job_ids) > 0, 120, "the first outcomes folded")
    projectors[0].send_signal(signal.SIGTERM)  # leaves cleanly
    assert projectors[0].wait(30) == 0
    asyncio.run(publish_many(kafka_settings, thirds[1]))
    projectors[1].send_signal(signal.SIGKILL)  # leaves abruptly, likely mid-batch
    projectors[1].wait()
    processes.start("projector")  # a new one joins
    asyncio.run(publish_many(kafka_settings, thirds[2]))

    wait_fully_folded(engine, kafka_settings, 300)
    wait_for(
        lambda: all((job_row(engine, j) or {}).get("status") == "completed" for j in job_ids),
        120,
        "every job completed",
    )
    _assert_exact(engine, job_ids)
    live = _rows(engine, set(job_ids), of_mine=True)

    # a shadow replay beside the running shards: swapped in, and every shard goes on
    shadow = _batchctl(stack_env, "replay")
    assert shadow.returncode == 0 and "swapped in" in shadow.stdout, shadow.stderr
    assert _rows(engine, set(job_ids), of_mine=True) == live
    more_id, more = f.mixed_job(200)
    asyncio.run(publish_many(kafka_settings, _messages(kafka_settings, more_id, more)))
    wait_for(
        lambda: (job_row(engine, more_id) or {}).get("status") == "completed",
        120,
        "a job published after the swap folded by the shards",
    )
    assert [p.poll() for p in processes.running if p.poll() is not None] == [0, -9]
    job_ids.append(more_id)
    live = _rows(engine, set(job_ids), of_mine=True)

    members.stop()
    for projector in processes.running:
        if projector.poll() is None:
            projector.terminate()
            assert projector.wait(30) == 0
    alone = _batchctl(stack_env, "replay", "--in-place")  # one process folds everything
    assert alone.returncode == 0, alone.stderr
    assert _rows(engine, set(job_ids), of_mine=True) == live
