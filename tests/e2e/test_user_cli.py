"""batchctl's user commands against a running stack (`batchctl run`), as a user types them:
submit with watch and output, status, jobs, items, cancel, retry, and their failures."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_batchctl_run import _ready, free_port
from tests.integration.conftest import wait_for


@pytest.fixture(scope="module")
def stack(stack_env) -> Iterator[dict[str, str]]:
    port = free_port()
    run = subprocess.Popen(
        [sys.executable, "-m", "batchctl", "run", "--port", str(port)],
        env=stack_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _ready(port), 60, "the API of `batchctl run` to be ready")
        key = subprocess.run(
            [sys.executable, "-m", "batchctl", "keys", "create", "--user", "cli-tester"],
            env=stack_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        yield {
            **stack_env,
            "BATCHCTL_API_URL": f"http://127.0.0.1:{port}",
            "BATCHCTL_API_KEY": key,
            "BATCHCTL_CONFIG": os.devnull,
        }
    finally:
        run.terminate()
        run.wait(40)


def batchctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "batchctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def test_submit_a_file_watch_it_and_write_the_results(stack, tmp_path: Path):
    batch = tmp_path / "batch.jsonl"
    lines = [{"token": f"t{i}"} for i in range(300)]
    lines += [{"token": f"bad{i}", "permanent_code": "told_to_fail"} for i in range(20)]
    batch.write_text("".join(json.dumps(line) + "\n" for line in lines))
    results = tmp_path / "results.jsonl"

    done = batchctl(
        stack, "submit", str(batch), "--type", "scripted", "--watch", "--output", str(results)
    )
    assert done.returncode == 0, done.stderr
    assert "submitted 320 scripted items" in done.stdout
    assert "320/320" in done.stderr  # the progress bar's last state
    assert "told_to_fail: 20 items" in done.stdout  # the summary's top errors
    written = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["item_index"] for r in written] == list(range(320))
    assert sum(r["status"] == "failed" for r in written) == 20
    job_id = done.stdout.split("as job ")[1].split()[0]

    status = json.loads(batchctl(stack, "status", job_id, "--json").stdout)
    assert (status["status"], status["success_items"], status["failed_items"]) == (
        "completed",
        300,
        20,
    )
    listed = json.loads(batchctl(stack, "jobs", "--json").stdout)
    assert job_id in [job["batch_job_id"] for job in listed]
    failed = batchctl(stack, "items", job_id, "--status", "failed", "--json").stdout
    assert len(failed.splitlines()) == 20

    retried = batchctl(stack, "retry", job_id, "--json")
    assert retried.returncode == 0, retried.stderr
    retry = json.loads(retried.stdout)
    assert retry["total_items"] == 20
    cancelled = batchctl(stack, "cancel", job_id)
    assert cancelled.returncode == 1 and "already completed" in cancelled.stderr


def test_csv_and_json_files(stack, tmp_path: Path):
    csv_file = tmp_path / "batch.csv"
    csv_file.write_text("token,key\n" + "".join(f"c{i},\n" for i in range(50)))
    as_json = json.loads(
        batchctl(stack, "submit", str(csv_file), "-t", "scripted", "--json").stdout
    )
    assert as_json["total_items"] == 50
    json_file = tmp_path / "batch.json"
    json_file.write_text(json.dumps({"items": [{"token": "j1"}, {"token": "j2"}]}))
    done = batchctl(stack, "submit", str(json_file), "-t", "scripted", "--watch", "--json")
    assert json.loads(done.stdout)["status"] == "completed"


def test_failures_are_one_clear_line_not_a_traceback(stack, tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"token": "ok"}\n{"nope": 1}\n')
    refused = batchctl(stack, "submit", str(bad), "--type", "scripted")
    assert refused.returncode == 1
    assert "422 invalid_batch" in refused.stderr and "item 1:" in refused.stderr

    cases = [
        (stack, ["status", "00000000-0000-0000-0000-000000000000"], "not found"),
        (stack, ["submit", str(tmp_path / "missing.jsonl"), "-t", "scripted"], "no such file"),
        (stack, ["submit", str(bad), "-t", "teleport"], "unknown job_type"),
        ({**stack, "BATCHCTL_API_KEY": "aob_wrong"}, ["jobs"], "API key was refused"),
        ({**stack, "BATCHCTL_API_URL": "http://127.0.0.1:9"}, ["jobs"], "not reachable"),
        ({k: v for k, v in stack.items() if k != "BATCHCTL_API_KEY"}, ["jobs"], "no API key"),
    ]
    for env, args, message in cases:
        done = batchctl(env, *args)
        assert done.returncode == 1, (args, done.stdout)
        assert message in done.stderr, (args, done.stderr)


def test_the_config_file_gives_the_url_and_key(stack, tmp_path: Path):
    config = tmp_path / "config.toml"
    config.write_text(
        f'api_url = "{stack["BATCHCTL_API_URL"]}"\napi_key = "{stack["BATCHCTL_API_KEY"]}"\n'
    )
    env = {k: v for k, v in stack.items() if not k.startswith("BATCHCTL_")}
    env["BATCHCTL_CONFIG"] = str(config)
    done = batchctl(env, "jobs", "--json")
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), list)
