"""A job published straight to Kafka with kcat (Debian's Kafka command-line client), as the
README shows an upstream system doing it, completes and is visible through the API."""

import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key
from tests.integration.conftest import wait_job


def kcat_produce(servers: str, topic: str, lines: list[tuple[str, dict]]) -> None:
    data = "".join(f"{key}\t{json.dumps(value)}\n" for key, value in lines)
    subprocess.run(
        ["kcat", "-P", "-b", servers, "-t", topic, "-K", "\t"],
        input=data.encode(),
        check=True,
        timeout=30,
    )


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_a_job_published_with_kcat_completes_and_shows_in_the_api(
    api, engine, processes, kafka_settings
):
    processes.start("projector")
    processes.start("worker", "--job-type", "query")
    user = f"upstream-{uuid.uuid4().hex[:6]}"
    with sessionmaker(engine)() as session:
        headers = {"Authorization": f"Bearer {create_key(session, user_id=user).secret}"}

    job_id = str(uuid.uuid4())
    now = datetime.now(UTC).isoformat()
    hashes = [f"{n:064x}" for n in range(3)]
    servers, topics = kafka_settings.kafka_bootstrap_servers, kafka_settings.topics
    kcat_produce(
        servers,
        topics.items("query"),
        [
            (
                f"{job_id}:{index}",
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "ItemSubmitted",
                    "schema_version": 1,
                    "occurred_at": now,
                    "job_id": job_id,
                    "job_type": "query",
                    "item_index": index,
                    "input": {"content_hash": content_hash},
                },
            )
            for index, content_hash in enumerate(hashes)
        ],
    )
    kcat_produce(
        servers,
        topics.jobs,
        [
            (
                job_id,
                {
                    "event_id": str(uuid.uuid4()),
                    "event_type": "JobSubmitted",
                    "schema_version": 1,
                    "occurred_at": now,
                    "job_id": job_id,
                    "job_type": "query",
                    "user_id": user,
                    "total_items": 3,
                    "metadata": {"source": "kcat"},
                },
            )
        ],
    )

    wait_job(engine, uuid.UUID(job_id), 60, lambda j: j["status"] == "completed", "completion")
    job = api.get(f"/batch/jobs/{job_id}", headers=headers).json()
    assert (job["status"], job["success_items"], job["metadata"]) == (
        "completed",
        3,
        {"source": "kcat"},
    )
    items = api.get(f"/batch/jobs/{job_id}/items", headers=headers).json()["items"]
    assert [i["output_data"]["found"] for i in items] == [False, False, False]
