"""A record the contract accepts but PostgreSQL refuses (here: a CHECK constraint added for
the test, standing for any refusal the contract does not foresee) does not stop the
projector: its batch is written again in halves until the record is alone; the record is
dead-lettered (``unprojectable``), its item fails with that code so that its job finishes,
everything else is written in the same run, and a replay rebuilds the same tables."""

import asyncio
import uuid
from typing import Any

from sqlalchemy import text

from events.codec import encode
from events.models import ItemSubmitted, ItemSucceeded
from streaming.letters import read_letters
from tests import factories as f
from tests.integration.conftest import publish_many, wait_fully_folded, wait_job
from tests.integration.test_poison_corpus import _batchctl, _rows

POISON_HASH = "d" * 64
CONSTRAINTS = {
    "refuse_poison_input": f"input_data IS NULL OR input_data->>'content_hash' <> '{POISON_HASH}'",
    "refuse_poison_output": "output_data IS NULL OR NOT output_data ? 'poison'",
}


def test_a_record_postgresql_refuses_is_quarantined_and_the_rest_is_written(
    kafka_settings, engine, processes, stack_env
):
    # The constraints stay for the rest of the session (they refuse values no other test
    # sends): a later replay of the session's topics must refuse the same records.
    with engine.begin() as conn:
        for name, check in CONSTRAINTS.items():
            conn.execute(text(f"ALTER TABLE items DROP CONSTRAINT IF EXISTS {name}"))
            conn.execute(text(f"ALTER TABLE items ADD CONSTRAINT {name} CHECK ({check})"))
    topics = kafka_settings.topics
    processes.start("worker", "--job-type", "query")
    projector = processes.start("projector")
    job, other = uuid.uuid4(), uuid.uuid4()
    events: list[Any] = [f.job_submitted(job, 40), f.job_submitted(other, 3)]
    for index in range(40):
        content_hash = POISON_HASH if index == 7 else f"{index:064x}"
        events.append(
            ItemSubmitted.new(
                job_id=job, item_index=index, job_type="query", input={"content_hash": content_hash}
            )
        )
    # Another job's outcomes, published straight: PostgreSQL refuses one of them.
    poison = ItemSucceeded.new(job_id=other, item_index=1, output={"poison": True})
    events += [f.succeeded(other, 0), poison, f.failed(other, 2)]
    messages = []
    for event in events:
        topic = {"JobSubmitted": topics.jobs, "ItemSubmitted": topics.items("query")}.get(
            event.event_type, topics.outcomes
        )
        key = str(event.job_id).encode()
        if event.event_type == "ItemSubmitted":
            key = f"{event.job_id}:{event.item_index}".encode()
        messages.append((topic, key, encode(event)))
    asyncio.run(publish_many(kafka_settings, messages))

    done = wait_job(engine, job, 90, lambda j: j["status"] == "completed", "the job to finish")
    assert (done["success_items"], done["failed_items"]) == (39, 1)
    finished = wait_job(engine, other, 60, lambda j: j["status"] == "completed", "the other")
    assert (finished["success_items"], finished["failed_items"]) == (1, 2)
    with engine.connect() as conn:
        failed = conn.execute(
            text(
                "SELECT job_id, item_index, error_code, input_data, output_data FROM items"
                " WHERE job_id IN (:a, :b) AND status = 'failed' ORDER BY item_index"
            ),
            {"a": job, "b": other},
        ).all()
    assert {(r.job_id, r.item_index, r.error_code) for r in failed} == {
        (job, 7, "unprojectable"),
        (other, 1, "unprojectable"),
        (other, 2, "boom"),
    }
    assert projector.poll() is None

    letters = [x for x in asyncio.run(read_letters(kafka_settings)) if x.reason == "unprojectable"]
    assert sorted(x.header("dlq.source.topic") for x in letters) == sorted(
        [topics.items("query"), topics.outcomes]
    )
    assert all("CheckViolation" in x.header("dlq.message") for x in letters)
    listed = _batchctl(stack_env, "dlq", "list", "--reason", "unprojectable", "--json")
    assert listed.returncode == 0 and listed.stdout.count('"unprojectable"') == 2

    wait_fully_folded(engine, kafka_settings, 60)
    live = _rows(engine, {job, other}, of_mine=True)
    replayed = _batchctl(stack_env, "replay")
    assert replayed.returncode == 0, replayed.stderr
    wait_fully_folded(engine, kafka_settings, 60)
    assert _rows(engine, {job, other}, of_mine=True) == live
