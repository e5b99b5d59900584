"""Shared by the benchmarks: the local services, fresh topics, fast pre-loading, RSS."""

import asyncio
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition
from sqlalchemy.engine import make_url

from batchctl.dev.services import up
from migrations.scratch import create_database, drop_database
from streaming.clients import connection_options, make_producer
from streaming.settings import KafkaSettings


def services() -> None:
    """Use KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when given, else bring up the local ones."""
    for line in up():
        print(line, flush=True)


def fresh_settings(partitions: int = 6) -> KafkaSettings:
    return KafkaSettings(
        BATCH_TOPIC_PREFIX=f"bench{uuid.uuid4().hex[:8]}.", BATCH_TOPIC_PARTITIONS=partitions
    )


async def preload(
    settings: KafkaSettings,
    messages: list[tuple[str, bytes, bytes]],
    stamps_ms: list[int] | None = None,
) -> None:
    """Publish (topic, key, value) messages with full batches, partitioned by key.

    Records are sent a partition at a time, so their own timestamps (the time of sending)
    follow that order; ``stamps_ms``, one per message, gives them the times of the events
    instead, as a live pipeline would have written them."""
    producer = make_producer(settings, linger_ms=50)
    await producer.start()
    try:
        partitioner = DefaultPartitioner()
        by_tp: dict[TopicPartition, list[tuple[bytes, bytes, int | None]]] = defaultdict(list)
        partitions = {}
        for n, (topic, key, value) in enumerate(messages):
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            p = partitioner(key, partitions[topic], partitions[topic])
            stamp = stamps_ms[n] if stamps_ms is not None else None
            by_tp[TopicPartition(topic, p)].append((key, value, stamp))
        deliveries = []
        for tp, records in by_tp.items():
            batch = producer.create_batch()
            for key, value, stamp in records:
                if batch.append(key=key, value=value, timestamp=stamp) is None:
                    batch.close()
                    deliveries.append(
                        await producer.send_batch(batch, tp.topic, partition=tp.partition)
                    )
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=stamp)
            batch.close()
            deliveries.append(await producer.send_batch(batch, tp.topic, partition=tp.partition))
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


def peak_rss_mb(pid: int | None = None) -> float:
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user and system) a process has used; with ``children``, also those of
    its children that have ended (PostgreSQL's postmaster reaps its backends)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + ((cutime + cstime) if children else 0)) / _TICK


def pids_of(name: str, cmdline_part: str = "") -> list[int]:
    """The pids of processes whose command is ``name`` (and whose command line holds
    ``cmdline_part``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != name:
                continue
            if cmdline_part and cmdline_part.encode() not in (proc / "cmdline").read_bytes():
                continue
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        found.append(int(proc.name))
    return found


def service_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by this machine's PostgreSQL (every process of it, and its
    ended backends) and Kafka brokers."""
    postgres = pids_of("postgres")
    postmasters = [pid for pid in postgres if _parent(pid) not in postgres]
    return {
        "postgres": sum(cpu_s(pid) for pid in postgres)
        + sum(cpu_s(pid, children=True) - cpu_s(pid) for pid in postmasters),
        "kafka": sum(cpu_s(pid) for pid in pids_of("java", "kafka.Kafka")),
    }


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0


@contextmanager
def replicated_cluster(brokers: int) -> Iterator[KafkaSettings]:
    """A cluster of ``brokers`` local KRaft nodes (``batchctl dev``'s code, in a temporary
    directory, on free ports), its settings with fresh topics' names and three copies."""
    from batchctl.dev import kafka_broker
    from batchctl.dev.settings import DevSettings

    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as where:
        dev = DevSettings(
            dir=Path(where), kafka_port=free_port_block(2 * brokers), kafka_brokers=brokers
        )
        print(kafka_broker.start(dev), flush=True)
        try:
            yield KafkaSettings(
                kafka_bootstrap_servers=dev.bootstrap_servers,
                BATCH_TOPIC_PREFIX=f"bench{uuid.uuid4().hex[:8]}.",
                BATCH_TOPIC_PARTITIONS=6,
                BATCH_TOPIC_REPLICATION=dev.replication_factor,
            )
        finally:
            print(kafka_broker.stop(dev), flush=True)


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(100):
        first = free_port()
        if all(_port_free(port) for port in range(first, first + count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown cpu",
    )
    return f"{os.cpu_count()} cores, {cpu}"


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OutcomeCount(NamedTuple):
    first: float  # perf_counter when the first outcome was read
    last: float  # ... and the last
    seen: int
    worker_cpu_s: float  # CPU the worker used between the two


async def count_outcomes(
    settings: KafkaSettings, expected: int, worker: "subprocess.Popen[bytes]"
) -> OutcomeCount:
    consumer = AIOKafkaConsumer(
        settings.topics.outcomes,
        **connection_options(settings),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    seen = 0
    first = last = 0.0
    rss = 0.0
    cpu_at_first = 0.0
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            now = time.perf_counter()
            for records in batch.values():
                if records and not first:
                    first = now
                    cpu_at_first = cpu_seconds(worker.pid)
                seen += len(records)
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}")
            rss = max(rss, peak_rss_mb(worker.pid))
        last = time.perf_counter()
        cpu = cpu_seconds(worker.pid) - cpu_at_first
    finally:
        await consumer.stop()
    return OutcomeCount(first, last, seen, cpu)


def fresh_database(server_url: str) -> str:
    return create_database(server_url, "bench_")


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database (migrated) on DATABASE_URL's server, dropped afterwards."""
    server_url = (
        make_url(os.environ["DATABASE_URL"])
        .set(database="postgres")
        .render_as_string(hide_password=False)
    )
    url = fresh_database(server_url)
    try:
        yield url
    finally:
        drop_database(server_url, url)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, timeout_s: float = 60, check: Callable[[], None] = lambda: None) -> None:
    """Until the API at ``base`` answers /readyz with 200; ``check`` may raise (a part died)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check()
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API at {base} was not ready within {timeout_s:.0f}s")


def post_ndjson(
    http: httpx.Client, job_type: str, chunks: Iterable[bytes]
) -> tuple[float, dict[str, Any]]:
    """Upload ``chunks`` as one NDJSON batch; seconds to the 202, and its body."""
    started = time.perf_counter()
    response = http.post(
        "/batch/jobs",
        params={"job_type": job_type},
        content=chunks,
        headers={"Content-Type": "application/x-ndjson"},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return elapsed, body
