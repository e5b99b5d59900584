"""Apache Kafka in KRaft mode assembled from Maven Central jars: one node, or a replicated
cluster of several (``BATCH_DEV_KAFKA_BROKERS``), each node both broker and controller.

The jars are resolved once with Maven into a per-user cache and reused by every clone; the
log dirs live under the project's git-ignored ``.dev/kafka`` (a cluster's nodes under
``.dev/kafka/node-<id>``) and are formatted once, a cluster's with one cluster id. Each node
runs detached (its pid in ``broker.pid``, its log in ``broker.log``) until ``dev down``.
"""

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from batchctl.dev.errors import DevServiceError
from batchctl.dev.settings import KAFKA_VERSION, DevSettings

MAIN_CLASS = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"

LOG4J = """log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
"""


@dataclass(frozen=True)
class Node:
    """One KRaft node (broker and controller) of the local cluster."""

    node_id: int
    port: int
    controller_port: int
    dir: Path  # its config, data, pid and log

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data(self) -> Path:
        return self.dir / "data"


def nodes(settings: DevSettings) -> list[Node]:
    """The nodes ``settings`` asks for: one in ``.dev/kafka`` itself (as ever), or a cluster's
    in ``.dev/kafka/node-<id>``."""
    ports = zip(settings.kafka_ports, settings.controller_ports, strict=True)
    if settings.kafka_brokers == 1:
        return [Node(1, settings.kafka_port, settings.controller_port, settings.kafka_dir)]
    return [
        Node(i + 1, port, cport, settings.kafka_dir / f"node-{i + 1}")
        for i, (port, cport) in enumerate(ports)
    ]


def _every_node_dir(settings: DevSettings) -> list[Path]:
    """Where a node of any earlier ``dev up`` (single or cluster) may have left its pid."""
    kdir = settings.kafka_dir
    return [kdir, *sorted(kdir.glob("node-*"))] if kdir.exists() else []


def _failover(settings: DevSettings) -> str:
    """A cluster's controllers notice a dead node within 3 s (9 s by default), so its
    partitions get new leaders sooner; one node has no one to fail over to."""
    if settings.kafka_brokers == 1:
        return ""
    return "broker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=1000\n"


def server_properties(settings: DevSettings, node: Node) -> str:
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes(settings))
    copies = settings.replication_factor
    min_isr = max(1, min(2, copies - 1))  # three copies: an acknowledged write is on two
    return f"""process.roles=broker,controller
node.id={node.node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{node.port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={node.data}
num.partitions=1
auto.create.topics.enable=false
default.replication.factor={copies}
min.insync.replicas={min_isr}
unclean.leader.election.enable=false
offsets.topic.replication.factor={copies}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={copies}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
{_failover(settings)}num.network.threads=2
num.io.threads=2
message.max.bytes=2097152
"""


def jars_cached(settings: DevSettings) -> bool:
    return (settings.jars_dir / ".complete").exists()


def ensure_jars(settings: DevSettings) -> Path:
    """Resolve the broker's jars once (about 50 MB) into the per-user cache."""
    libs = settings.jars_dir
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevServiceError(
            "Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven"
        )
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    pom = resources.files("batchctl.dev").joinpath("kafka-pom.xml")
    with resources.as_file(pom) as pom_path:
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise DevServiceError(
            f"fetching Kafka {KAFKA_VERSION} jars failed:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    if any(p.name.startswith("slf4j-api-2") for p in tmp.iterdir()):
        raise DevServiceError("slf4j-api 2.x landed on the broker classpath")
    (tmp / ".complete").write_text(KAFKA_VERSION)
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    return libs


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise DevServiceError(
            "Java 17 is needed for the Kafka broker: apt-get install openjdk-17-jre-headless"
        )
    return java


def _classpath(settings: DevSettings) -> str:
    return str(settings.jars_dir / "*")


def _write_config(settings: DevSettings, node: Node) -> Path:
    node.dir.mkdir(parents=True, exist_ok=True)
    props = node.dir / "server.properties"
    props.write_text(server_properties(settings, node))
    (node.dir / "log4j.properties").write_text(LOG4J)
    return props


def _cluster_id(settings: DevSettings) -> str:
    """One id for all the nodes of a cluster, kept beside them (a node formatted with
    another id would not join)."""
    kept = settings.kafka_dir / "cluster.id"
    if settings.kafka_brokers > 1 and kept.exists():
        return kept.read_text().strip()
    cluster_id = (
        subprocess.run(
            [_java(), "-cp", _classpath(settings), STORAGE_TOOL, "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    if settings.kafka_brokers > 1:
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(cluster_id)
    return cluster_id


def _format_storage(settings: DevSettings, node: Node, props: Path) -> None:
    """Format the node's log dirs once."""
    if (node.data / "meta.properties").exists():
        return
    result = subprocess.run(
        [
            _java(),
            "-Dlog4j.configuration=file:" + str(node.dir / "log4j.properties"),
            "-cp",
            _classpath(settings),
            STORAGE_TOOL,
            "format",
            "-t",
            _cluster_id(settings),
            "-c",
            str(props),
            "--ignore-formatted",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DevServiceError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")


def _pid_of(node_dir: Path) -> int | None:
    try:
        pid = int((node_dir / "broker.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and MAIN_CLASS.encode() not in cmdline.read_bytes():
        return None  # the pid was reused by another program
    return pid


def running_pid(settings: DevSettings, node_id: int = 1) -> int | None:
    """The pid of a node of ``settings`` (the first by default), if it runs."""
    return _pid_of(_node(settings, node_id).dir)


def _node(settings: DevSettings, node_id: int) -> Node:
    for node in nodes(settings):
        if node.node_id == node_id:
            return node
    raise DevServiceError(f"no Kafka node {node_id} (nodes 1 to {settings.kafka_brokers})")


async def is_ready(bootstrap_servers: str, timeout_s: float = 3.0, brokers: int = 1) -> bool:
    """Ready means the cluster answers a metadata request naming ``brokers`` brokers, not
    merely that a port is open."""
    from aiokafka import AIOKafkaClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # refused probes are expected
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return len(client.cluster.brokers()) >= brokers
    except Exception:
        return False
    finally:
        await client.close()


def is_ours(settings: DevSettings, bootstrap_servers: str) -> bool:
    """Whether ``bootstrap_servers`` is this checkout's broker (as ``.dev/env`` names it):
    then ``dev up`` starts it again if it died, rather than only waiting for it."""
    return bootstrap_servers.strip() == settings.bootstrap_servers and all(
        (node.data / "meta.properties").exists() for node in nodes(settings)
    )


def shut_down_cleanly(settings: DevSettings, node_id: int = 1) -> bool:
    """Whether the node's last run ended cleanly: Kafka leaves this marker in its log dir
    then, and recovers every log it finds without it (after a kill -9, a crash)."""
    return (_node(settings, node_id).data / ".kafka_cleanshutdown").exists()


def wait_ready(
    bootstrap_servers: str,
    timeout_s: float,
    pid: int | None = None,
    log: Path | None = None,
    waiting_for: str = "start-up",
    brokers: int = 1,
) -> None:
    """Wait for a metadata answer naming ``brokers`` brokers, saying every
    ``PROGRESS_EVERY_S`` what for."""
    started = time.monotonic()
    deadline, said = started + timeout_s, started
    while time.monotonic() < deadline:
        if asyncio.run(is_ready(bootstrap_servers, brokers=brokers)):
            return
        if pid is not None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                tail = log.read_text()[-3000:] if log and log.exists() else ""
                raise DevServiceError(f"the Kafka broker exited during start-up:\n{tail}") from None
        if time.monotonic() - said >= PROGRESS_EVERY_S:
            said = time.monotonic()
            print(
                f"waiting for Kafka at {bootstrap_servers}: {waiting_for} "
                f"({said - started:.0f}s of at most {timeout_s:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(0.5)
    raise DevServiceError(
        f"Kafka at {bootstrap_servers} did not answer within {timeout_s:.0f}s ({waiting_for})"
    )


PROGRESS_EVERY_S = 10.0
RECOVERY_TIMEOUT_S = 600.0  # a log recovery reads every segment written since the last flush


def _launch(settings: DevSettings, node: Node) -> tuple[int, bool]:
    """Start one node; (its pid, whether it recovers its logs after an unclean stop)."""
    ensure_jars(settings)
    props = _write_config(settings, node)
    ran_before = (node.data / "meta.properties").exists()
    _format_storage(settings, node, props)
    recovering = ran_before and not (node.data / ".kafka_cleanshutdown").exists()
    heap = f"{settings.kafka_heap_mb}m"
    with (node.dir / "broker.log").open("ab") as out:
        process = subprocess.Popen(
            [
                _java(),
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                "-Dlog4j.configuration=file:" + str(node.dir / "log4j.properties"),
                "-cp",
                _classpath(settings),
                MAIN_CLASS,
                str(props),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (node.dir / "broker.pid").write_text(str(process.pid))
    return process.pid, recovering


def start(settings: DevSettings, *, timeout_s: float = 90) -> str:
    """Start the nodes that do not run yet; return a line describing the cluster."""
    wanted = nodes(settings)
    running = {node.node_id: _pid_of(node.dir) for node in wanted}
    others = [
        d
        for d in _every_node_dir(settings)
        if _pid_of(d) is not None and d not in {node.dir for node in wanted}
    ]
    if others:
        raise DevServiceError(
            f"Kafka nodes of another layout run ({', '.join(str(d) for d in others)}): "
            "`batchctl dev down` first"
        )
    servers, size = settings.bootstrap_servers, len(wanted)
    if all(running.values()):
        wait_ready(servers, timeout_s, brokers=size)
        pids = ", ".join(str(pid) for pid in running.values())
        return f"Kafka {KAFKA_VERSION} already running (pid {pids}) on {servers}"
    if not any(running.values()) and asyncio.run(is_ready(servers)):
        return f"Kafka already answering on {servers} (not started by batchctl)"
    started, recovering = [], False
    for node in wanted:
        if running[node.node_id] is None:
            pid, recovers = _launch(settings, node)
            started.append(pid)
            recovering = recovering or recovers
    first = wanted[0]
    if recovering:  # as long as it takes, within a bound, saying so
        wait_ready(
            servers,
            max(timeout_s, RECOVERY_TIMEOUT_S),
            started[0] if size == 1 else None,
            first.dir / "broker.log",
            "its log recovery after an unclean shutdown (a kill or a crash)",
            brokers=size,
        )
    else:
        wait_ready(
            servers,
            timeout_s,
            started[0] if size == 1 else None,
            first.dir / "broker.log",
            brokers=size,
        )
    where = first.data if size == 1 else settings.kafka_dir
    shape = (
        ""
        if size == 1
        else f"a cluster of {size} nodes (replication factor {settings.replication_factor}), "
    )
    return (
        f"Kafka {KAFKA_VERSION} started (pid {', '.join(map(str, started))}) on {servers}, "
        f"{shape}data in {where}"
    )


def start_node(settings: DevSettings, node_id: int, *, timeout_s: float = 90) -> str:
    """Start one node of the cluster again (after ``kill_node``)."""
    node = _node(settings, node_id)
    if _pid_of(node.dir) is None:
        _launch(settings, node)
    wait_ready(
        settings.bootstrap_servers, max(timeout_s, RECOVERY_TIMEOUT_S), brokers=len(nodes(settings))
    )
    return f"Kafka node {node_id} runs again on {node.bootstrap}"


def kill_node(settings: DevSettings, node_id: int) -> int:
    """kill -9 one node (a chaos test's fault); returns its pid."""
    node = _node(settings, node_id)
    pid = _pid_of(node.dir)
    if pid is None:
        raise DevServiceError(f"Kafka node {node_id} is not running")
    os.kill(pid, signal.SIGKILL)
    return pid


def _wait_or_kill(pid: int, timeout_s: float) -> None:
    """Wait for a process told to stop; kill it past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def stop(settings: DevSettings, *, timeout_s: float = 30) -> str:
    """Stop every node this checkout runs, of any layout (SIGTERM: a clean shutdown)."""
    running = [(d, pid) for d in _every_node_dir(settings) if (pid := _pid_of(d)) is not None]
    if not running:
        return "Kafka is not running"
    for _, pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for node_dir, pid in running:
        _wait_or_kill(pid, timeout_s)
        (node_dir / "broker.pid").unlink(missing_ok=True)
    return f"Kafka stopped (pid {', '.join(str(pid) for _, pid in running)})"


def node_states(settings: DevSettings) -> list[dict[str, Any]]:
    """Each node of ``settings``: id, port, pid and state (``running`` answers metadata
    on its own port, ``starting`` runs but does not answer yet, ``stopped``)."""
    states = []
    for node in nodes(settings):
        pid = _pid_of(node.dir)
        answers = pid is not None and asyncio.run(is_ready(node.bootstrap, timeout_s=2))
        state = "running" if answers else ("starting" if pid is not None else "stopped")
        states.append({"node_id": node.node_id, "port": node.port, "pid": pid, "state": state})
    return states


def status(settings: DevSettings) -> str:
    states = node_states(settings)
    if all(s["pid"] is None for s in states):
        if asyncio.run(is_ready(settings.bootstrap_servers)):
            return f"Kafka: answering on {settings.bootstrap_servers} (not started by batchctl)"
        return "Kafka: not running"
    if len(states) == 1:
        s = states[0]
        ready = "ready" if s["state"] == "running" else "NOT answering"
        return f"Kafka: pid {s['pid']}, {ready} on {settings.bootstrap_servers}"
    return "Kafka: " + "; ".join(
        f"node {s['node_id']} on :{s['port']} {s['state']}"
        + (f" (pid {s['pid']})" if s["pid"] else "")
        for s in states
    )
