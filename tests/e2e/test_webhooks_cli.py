"""``batchctl webhooks`` and ``batchctl deliveries`` as an operator types them."""

import uuid

import pytest

from tests.e2e.test_keys_cli import batchctl


@pytest.fixture
def user() -> str:
    return f"hooks-{uuid.uuid4().hex[:8]}"


def test_set_list_and_remove_a_default_url(stack_env, user):
    env = {**stack_env, "WEBHOOK_ALLOWED_HOSTS": "hooks.internal"}
    done = batchctl(env, "webhooks", "set", "--user", user, "http://hooks.internal:8080/in")
    assert done.returncode == 0, done.stderr
    listed = batchctl(env, "webhooks", "list", "--user", user)
    assert "http://hooks.internal:8080/in" in listed.stdout
    for refused in ("http://example.com/in", "https://10.0.0.1/in", "https://127.0.0.1/"):
        no = batchctl(env, "webhooks", "set", "--user", user, refused)
        assert no.returncode == 1 and "error:" in no.stderr and "Traceback" not in no.stderr
    assert batchctl(env, "webhooks", "set", "--user", user, "").returncode == 0
    assert "hooks.internal" not in batchctl(env, "webhooks", "list", "--user", user).stdout


def test_a_secret_is_shown_the_same_until_rotated(stack_env, user):
    first = batchctl(stack_env, "webhooks", "secret", "--user", user)
    assert first.returncode == 0, first.stderr
    secret = first.stdout.strip()
    assert secret.startswith("whsec_")
    assert batchctl(stack_env, "webhooks", "secret", "--user", user).stdout.strip() == secret
    rotated = batchctl(stack_env, "webhooks", "secret", "--user", user, "--rotate")
    assert rotated.returncode == 0
    assert rotated.stdout.strip() not in ("", secret)
    assert "previous secret also signs until" in rotated.stderr


def test_deliveries_of_a_job_without_any(stack_env):
    job = str(uuid.uuid4())
    shown = batchctl(stack_env, "deliveries", job)
    assert shown.returncode == 0 and "no webhook delivery" in shown.stdout
    again = batchctl(stack_env, "deliveries", "redeliver", job)
    assert again.returncode == 1 and "no webhook delivery" in again.stderr
    bad = batchctl(stack_env, "deliveries", "not-a-job")
    assert bad.returncode == 1 and "not a job id" in bad.stderr
