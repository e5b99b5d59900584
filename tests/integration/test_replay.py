"""``batchctl replay --in-place`` rebuilds exactly the tables the live projector built."""

import asyncio
import signal
import subprocess
import sys
import uuid
from typing import Any

from sqlalchemy import text

from events.codec import encode
from tests import factories as f
from tests.integration.conftest import (
    end_offsets_total,
    folded_positions,
    job_row,
    publish_many,
    wait_for,
    wait_fully_folded,
)

TABLES = {
    "jobs": "id",
    "items": "job_id",
    "results": "job_id",
}


def mixed_run(settings) -> list[uuid.UUID]:
    """Successes and failures in one job, cancellations in another."""
    topics = settings.topics
    messages = []
    job_id, events = f.mixed_job(40)
    cancelled_job = uuid.uuid4()
    events += [
        f.job_submitted(cancelled_job, 4),
        f.succeeded(cancelled_job, 0),
        f.cancel_requested(cancelled_job),
    ]
    events += [f.item_submitted(cancelled_job, i) for i in range(4)]
    events += [f.cancelled(cancelled_job, i, when=2) for i in (1, 2, 3)]
    for event in events:
        topic = {
            "JobSubmitted": topics.jobs,
            "JobCancelRequested": topics.jobs,
            "ItemSubmitted": topics.items("query"),
        }.get(event.event_type, topics.outcomes)
        messages.append((topic, str(event.job_id).encode(), encode(event)))
    asyncio.run(publish_many(settings, messages))
    return [job_id, cancelled_job]


def snapshot(engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        state = {}
        for table, key in TABLES.items():
            order = f"{key}, item_index" if table == "items" else key
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}")).mappings()
            state[table] = [dict(r) for r in rows]
        positions = conn.execute(
            text(
                "SELECT topic, partition, next_offset FROM projection_checkpoints"
                " WHERE projection = 'main' ORDER BY topic, partition"
            )
        ).all()
        state["positions"] = [tuple(p) for p in positions]
    return state


def replay_command(env) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchctl", "replay", "--in-place"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_in_place_replay_rebuilds_identical_tables(kafka_settings, engine, processes, stack_env):
    job_ids = mixed_run(kafka_settings)
    total = end_offsets_total(kafka_settings)
    projector = processes.start("projector")
    wait_for(
        lambda: folded_positions(engine, kafka_settings.topic_prefix) >= total,
        60,
        "the live projector to reach the end of every partition",
    )

    refused = replay_command(stack_env)
    assert refused.returncode == 1
    assert "a projector is running" in refused.stderr

    projector.send_signal(signal.SIGTERM)
    assert projector.wait(30) == 0
    live = snapshot(engine)
    replayed_run = replay_command(stack_env)
    assert replayed_run.returncode == 0, replayed_run.stderr
    assert f"replayed {total:,} events" in replayed_run.stdout
    replayed = snapshot(engine)

    # Rows the writer tests put straight into the tables have no events: replay drops them.
    # Every row that has its events must be identical, and the positions too.
    kept = {r["id"] for r in replayed["jobs"]}
    assert {j for j in job_ids} <= kept
    assert replayed["positions"] == live["positions"]
    for table, key in TABLES.items():
        assert replayed[table] == [r for r in live[table] if r[key] in kept], table
    statuses = {r["id"]: r["status"] for r in replayed["jobs"]}
    assert statuses[job_ids[0]] == "completed" and statuses[job_ids[1]] == "cancelled"


def test_shadow_replay_beside_a_running_projector_swaps_in_identical_tables(
    kafka_settings, engine, processes, stack_env
):
    job_ids = mixed_run(kafka_settings)
    # its log (shown if the test fails) says when it sees the swap and where it resumes
    processes.start("projector", LOG_LEVEL="INFO")
    wait_fully_folded(engine, kafka_settings, 60)
    live = snapshot(engine)
    with engine.connect() as conn:
        epoch = conn.execute(text("SELECT epoch FROM projection_state")).scalar_one()

    replayed_run = subprocess.run(
        [sys.executable, "-m", "batchctl", "replay"],
        env=stack_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert replayed_run.returncode == 0, replayed_run.stderr
    assert "swapped in" in replayed_run.stdout

    wait_fully_folded(engine, kafka_settings, 60)
    replayed = snapshot(engine)
    kept = {r["id"] for r in replayed["jobs"]}
    assert set(job_ids) <= kept
    for table, key in TABLES.items():
        assert replayed[table] == [r for r in live[table] if r[key] in kept], table
    with engine.connect() as conn:
        assert conn.execute(text("SELECT epoch FROM projection_state")).scalar_one() == epoch + 1
        options = "SELECT reloptions FROM pg_class WHERE oid = 'items'::regclass"
        assert conn.execute(text(options)).scalar_one() == ["fillfactor=50"]  # kept by the swap
        leftovers = conn.execute(
            text(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'replay_%'"
                " OR nspname LIKE 'retired_%'"
            )
        ).all()
    assert leftovers == []

    # The running projector carried on, into the new tables.
    later, events = f.mixed_job(5)
    topics = kafka_settings.topics
    asyncio.run(
        publish_many(
            kafka_settings,
            [
                (
                    {"JobSubmitted": topics.jobs, "ItemSubmitted": topics.items("query")}.get(
                        e.event_type, topics.outcomes
                    ),
                    str(later).encode(),
                    encode(e),
                )
                for e in events
            ],
        )
    )
    wait_for(
        lambda: (job_row(engine, later) or {}).get("status") == "completed",
        30,
        "a job published after the swap to be folded into the new tables",
    )
