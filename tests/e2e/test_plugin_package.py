"""A job type from another installed package (``examples/hash-check-plugin``): installed
with pip, found through its entry point by ``batchctl run``, validated by the API with its
input model, processed by its worker, visible through the API."""

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_batchctl_run import _ready, free_port
from tests.integration.conftest import wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hash-check-plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> str:
    target = tmp_path_factory.mktemp("plugin")
    source = tmp_path_factory.mktemp("plugin-source") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source)  # the build writes beside its sources
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
    )
    return str(target)


def test_a_job_type_from_another_package_runs_end_to_end(stack_env, plugin_path):
    env = {**stack_env, "PYTHONPATH": plugin_path}
    listed = subprocess.run(
        [sys.executable, "-c", "from jobtypes.registry import job_types; print(job_types())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "hash_check" in listed

    key = (
        subprocess.run(
            [sys.executable, "-m", "batchctl", "keys", "create", "--user", "plugin-user"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    port = free_port()
    run = subprocess.Popen(
        [sys.executable, "-m", "batchctl", "run", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: _ready(port), 60, "the API of `batchctl run` to be ready")
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        hello = "aGVsbG8="  # b"hello"
        hello_hash = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        refused = api.post(
            "/batch/jobs",
            json={"job_type": "hash_check", "items": [{"content": hello, "extra": 1}]},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["invalid_items"][0]["item_index"] == 0

        items = [
            {"content": hello, "content_hash": hello_hash},
            {"content": hello, "content_hash": "0" * 64},
        ]
        accepted = api.post("/batch/jobs", json={"job_type": "hash_check", "items": items})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["batch_job_id"]
        job = wait_for(
            lambda: (j := api.get(f"/batch/jobs/{job_id}").json())["status"] == "completed" and j,
            60,
            "the hash_check job to complete",
        )
        assert (job["success_items"], job["failed_items"]) == (2, 0)
        outputs = [i["output_data"] for i in api.get(f"/batch/jobs/{job_id}/items").json()["items"]]
        assert outputs == [
            {"matches": True, "actual_hash": hello_hash},
            {"matches": False, "actual_hash": hello_hash},
        ]
    finally:
        run.terminate()
        try:
            output = run.communicate(timeout=40)[0]
        except subprocess.TimeoutExpired:
            run.kill()
            output = run.communicate()[0]
    # `batchctl run` created the new job type's topic itself
    assert "created topics:" in output and "items.hash_check" in output, output
