"""``batchctl keys``: a key is shown once, listed by prefix only, and stops working when
revoked."""

import subprocess
import sys

from fastapi.testclient import TestClient

from ingest_api.app import create_app
from ingest_api.settings import ApiSettings


def batchctl(env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_create_list_revoke(stack_env, database_url, kafka_settings):
    created = batchctl(stack_env, "keys", "create", "--user", "carol")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("aob_") and "carol" in created.stderr
    key_id = created.stderr.split()[1]

    listed = batchctl(stack_env, "keys", "list", "--user", "carol")
    assert listed.returncode == 0
    assert secret[:12] in listed.stdout and secret not in listed.stdout  # prefix only

    settings = ApiSettings(
        kafka_bootstrap_servers=kafka_settings.kafka_bootstrap_servers,
        BATCH_TOPIC_PREFIX=kafka_settings.topic_prefix,
        database_url=database_url,
    )
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(settings)) as api:
        assert api.get("/batch/jobs", headers=headers).status_code == 200
        revoked = batchctl(stack_env, "keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert api.get("/batch/jobs", headers=headers).status_code == 401
    again = batchctl(stack_env, "keys", "revoke", key_id)
    assert again.returncode == 1 and "no active key" in again.stderr
    assert "Traceback" not in again.stderr
