"""``batchctl demo``: the README's first command ends here. Brings the local services up,
runs the whole stack, submits a sample batch of each job type through the REST API and
shows the jobs completed, read back from the projected tables."""

import base64
import hashlib
import os
import tempfile
import time
import uuid
from typing import Any

import httpx
from nacl.signing import SigningKey
from rich.console import Console
from rich.table import Table

from batchctl.demo_receiver import DemoReceiver
from batchctl.dev.services import up
from batchctl.supervisor import Supervisor, stack_parts

DEMO_USER = "demo-user"


class DemoFailed(Exception):
    """The demo could not complete; the message says where to look."""


class SampleDevices:
    """Devices with real Ed25519 keys, and sample items of the built-in job types for them.
    Ids and contents are new on every run: the registry keeps what earlier runs enrolled."""

    def __init__(self, count: int):
        run = uuid.uuid4().hex[:8]
        self.ids = [f"demo-{run}-{i:04d}" for i in range(count)]
        self.keys = [SigningKey.generate() for _ in range(count)]
        self.hashes = [
            hashlib.sha256(f"{run} capture {i}".encode()).hexdigest() for i in range(count)
        ]

    def items(self, job_type: str) -> list[dict[str, Any]]:
        if job_type == "enrollment":
            return [
                {
                    "device_id": device_id,
                    "public_key": _b64(bytes(key.verify_key)),
                    "platform": "android",
                }
                for device_id, key in zip(self.ids, self.keys, strict=True)
            ]
        if job_type == "proof_lock":
            return [
                {
                    "device_id": device_id,
                    "content_hash": digest,
                    "signature": _b64(key.sign(bytes.fromhex(digest)).signature),
                }
                for device_id, key, digest in zip(self.ids, self.keys, self.hashes, strict=True)
            ]
        if job_type == "query":
            half = len(self.ids) // 2
            return [{"content_hash": h} for h in self.hashes[:half]] + [
                {"device_id": device_id} for device_id in self.ids[half:]
            ]
        return []


# In this order: proofs are locked by enrolled devices, then looked up.
SAMPLE_JOB_TYPES = ("enrollment", "proof_lock", "query")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _wait_ready(client: httpx.Client, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise DemoFailed("the API did not become ready")


def _create_key(database_url: str) -> str:
    from sqlalchemy.orm import sessionmaker

    from ingest_api.api_keys import create_key
    from storage.engine import make_engine

    engine = make_engine(database_url, pool_size=1)
    with sessionmaker(engine)() as session:
        secret = create_key(session, user_id=DEMO_USER).secret
    engine.dispose()
    return secret


def _wait_finished(
    client: httpx.Client, job_ids: list[str], timeout_s: float
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    jobs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for job_id in job_ids:
            response = client.get(f"/batch/jobs/{job_id}")
            if response.status_code == 200:
                jobs[job_id] = response.json()
        if len(jobs) == len(job_ids) and all(
            j["status"] in ("completed", "cancelled", "failed") for j in jobs.values()
        ):
            return jobs
        time.sleep(0.3)
    raise DemoFailed(f"jobs did not finish within {timeout_s:.0f}s: {jobs}")


def run_demo(*, port: int, items_per_job: int, console: Console, serve: bool = False) -> None:
    from jobtypes.registry import job_types

    console.rule("local services")
    for line in up():
        console.print(line)
    database_url = os.environ["DATABASE_URL"]
    log_file = os.path.join(tempfile.gettempdir(), f"batchctl-demo-{os.getpid()}.log")
    receiver = DemoReceiver(lambda event, ok: _print_notification(console, event, ok)).start()
    # the demo's receiver is on this machine: http to 127.0.0.1 is allowed for this run
    allowed = ",".join(h for h in (os.environ.get("WEBHOOK_ALLOWED_HOSTS"), "127.0.0.1") if h)
    supervisor = Supervisor(
        stack_parts(job_types(), port),
        env={"WEBHOOK_ALLOWED_HOSTS": allowed, "PROJECTOR_ANNOUNCE_SWEEP_S": "1"},
        log_file=log_file,
    )
    console.rule("stack")
    supervisor.start_all()
    console.print(
        f"API on http://127.0.0.1:{port}, a worker per job type "
        f"({', '.join(job_types())}), the projector, the notifier; logs in {log_file}"
    )
    console.print(f"webhook receiver on {receiver.url} (signatures checked)")
    try:
        key = _create_key(database_url)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
        ) as client:
            _wait_ready(client)
            receiver.secret = client.get("/batch/webhook").json()["secret"]
            console.rule("sample batches")
            shown = _submit_samples(client, console, job_types(), items_per_job, receiver.url)
            _wait_notified(receiver, len(shown[0]), timeout_s=30)
            _show(console, *shown)
        _show_console(console, port, key, serve)
        if serve:
            supervisor.keep_running()
    except httpx.HTTPError as exc:
        raise DemoFailed(f"talking to the API failed: {exc!r}") from None
    except DemoFailed as exc:
        raise DemoFailed(f"{exc}\nsee the parts' logs in {log_file}") from None
    finally:
        supervisor.stop_all()
        receiver.stop()
    console.print(
        "stack stopped; Kafka and PostgreSQL keep running (`batchctl dev down` stops them)"
    )


def _show_console(console: Console, port: int, key: str, serving: bool) -> None:
    """Where to see these jobs in a browser, and the key to sign in with (the demo user's)."""
    console.rule("web console")
    url = f"http://127.0.0.1:{port}/ui/"
    if serving:
        console.print(f"the web console is at {url} (Ctrl-C stops the stack)")
    else:
        console.print(
            f"to look at these jobs in the web console: `.venv/bin/batchctl run --port {port}`"
            f" (or `scripts/demo --serve`), then open {url}"
        )
    console.print("sign in with the demo user's API key:", key, soft_wrap=True)


def _print_notification(console: Console, event: dict[str, Any], verified: bool) -> None:
    console.print(
        f"webhook: job {str(event.get('job_id'))[:8]}… {event.get('job_type')} "
        f"{event.get('status')}, {event.get('success_items')}/{event.get('total_items')} "
        f"succeeded (webhook-id {str(event.get('event_id'))[:8]}…, signature "
        f"{'verified' if verified else 'NOT verified'})",
        highlight=False,
    )


def _wait_notified(receiver: DemoReceiver, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(receiver.received) < count:
        if time.monotonic() > deadline:
            raise DemoFailed(
                f"{len(receiver.received)} of {count} notifications arrived in {timeout_s:.0f}s"
            )
        time.sleep(0.2)


def _submit_samples(
    client: httpx.Client,
    console: Console,
    job_types: list[str],
    items_per_job: int,
    callback_url: str,
) -> tuple[dict[str, str], dict[str, dict[str, Any]], float, dict[str, Any]]:
    started = time.monotonic()
    submitted: dict[str, str] = {}
    devices = SampleDevices(items_per_job)
    jobs: dict[str, dict[str, Any]] = {}
    for job_type in (t for t in SAMPLE_JOB_TYPES if t in job_types):
        response = client.post(
            "/batch/jobs",
            json={
                "job_type": job_type,
                "items": devices.items(job_type),
                "metadata": {"source": "batchctl demo"},
                "callback_url": callback_url,
            },
        )
        if response.status_code != 202:
            raise DemoFailed(
                f"submitting {job_type} failed: {response.status_code} {response.text}"
            )
        body = response.json()
        submitted[body["batch_job_id"]] = job_type
        console.print(
            f"submitted {job_type}: {body['total_items']} items -> "
            f"job {body['batch_job_id']} ({response.status_code})"
        )
        jobs |= _wait_finished(client, [body["batch_job_id"]], timeout_s=120)
    elapsed = time.monotonic() - started
    last = list(submitted)[-1]
    sample = client.get(f"/batch/jobs/{last}/items", params={"limit": 1}).json()
    return submitted, jobs, elapsed, sample["items"][0]


def _show(
    console: Console,
    submitted: dict[str, str],
    jobs: dict[str, dict[str, Any]],
    elapsed: float,
    sample_item: dict[str, Any],
) -> None:
    table = Table(title=f"jobs finished in {elapsed:.1f}s (read from GET /batch/jobs/<id>)")
    for column in (
        "job type",
        "job id",
        "status",
        "total",
        "success",
        "failed",
        "progress",
        "avg item ms",
    ):
        table.add_column(column)
    for job_id, job in jobs.items():
        result = job["result"] or {}
        table.add_row(
            submitted[job_id],
            job_id[:8] + "…",
            job["status"],
            str(job["total_items"]),
            str(job["success_items"]),
            str(job["failed_items"]),
            f"{job['progress_percent']:.0f}%",
            f"{result.get('avg_item_time_ms', 0):.3f}",
        )
    console.print(table)
    console.print("first item of the last job:", sample_item)
