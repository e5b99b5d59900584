"""A single-node KRaft Apache Kafka broker assembled from Maven Central jars.

The jars are resolved once with Maven into a per-user cache and reused by every clone; the
log dirs live under the project's git-ignored ``.dev/kafka`` and are formatted once. The broker
runs detached (its pid in ``broker.pid``, its log in ``broker.log``) until ``dev down``.
"""

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

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


def server_properties(settings: DevSettings) -> str:
    data = settings.kafka_dir / "data"
    port, cport = settings.kafka_port, settings.controller_port
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
message.max.bytes=2097152
"""


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


def _write_config(settings: DevSettings) -> Path:
    kdir = settings.kafka_dir
    kdir.mkdir(parents=True, exist_ok=True)
    props = kdir / "server.properties"
    props.write_text(server_properties(settings))
    (kdir / "log4j.properties").write_text(LOG4J)
    return props


def _format_storage(settings: DevSettings, props: Path) -> None:
    """Format the log dirs once; the cluster id is kept beside them."""
    if (settings.kafka_dir / "data" / "meta.properties").exists():
        return
    java, cp = _java(), _classpath(settings)
    cluster_id = (
        subprocess.run(
            [java, "-cp", cp, STORAGE_TOOL, "random-uuid"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    result = subprocess.run(
        [
            java,
            "-Dlog4j.configuration=file:" + str(settings.kafka_dir / "log4j.properties"),
            "-cp",
            cp,
            STORAGE_TOOL,
            "format",
            "-t",
            cluster_id,
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


def _pid_file(settings: DevSettings) -> Path:
    return settings.kafka_dir / "broker.pid"


def running_pid(settings: DevSettings) -> int | None:
    try:
        pid = int(_pid_file(settings).read_text().strip())
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


async def is_ready(bootstrap_servers: str, timeout_s: float = 3.0) -> bool:
    """Ready means the broker answers a metadata request, not merely that its port is open."""
    from aiokafka import AIOKafkaClient

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # refused probes are expected
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return len(client.cluster.brokers()) > 0
    except Exception:
        return False
    finally:
        await client.close()


def is_ours(settings: DevSettings, bootstrap_servers: str) -> bool:
    """Whether ``bootstrap_servers`` is this checkout's broker (as ``.dev/env`` names it):
    then ``dev up`` starts it again if it died, rather than only waiting for it."""
    return (
        bootstrap_servers.strip() == settings.bootstrap_servers
        and (_data_dir(settings) / "meta.properties").exists()
    )


def _data_dir(settings: DevSettings) -> Path:
    return settings.kafka_dir / "data"


def shut_down_cleanly(settings: DevSettings) -> bool:
    """Whether the broker's last run ended cleanly: Kafka leaves this marker in its log dir
    then, and recovers every log it finds without it (after a kill -9, a crash)."""
    return (_data_dir(settings) / ".kafka_cleanshutdown").exists()


def wait_ready(
    bootstrap_servers: str,
    timeout_s: float,
    pid: int | None = None,
    log: Path | None = None,
    waiting_for: str = "start-up",
) -> None:
    """Wait for a metadata answer, saying every ``PROGRESS_EVERY_S`` what for."""
    started = time.monotonic()
    deadline, said = started + timeout_s, started
    while time.monotonic() < deadline:
        if asyncio.run(is_ready(bootstrap_servers)):
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


def start(settings: DevSettings, *, timeout_s: float = 90) -> str:
    """Start the broker unless it runs already; return a line describing it."""
    pid = running_pid(settings)
    if pid is not None:
        wait_ready(settings.bootstrap_servers, timeout_s, pid)
        return f"Kafka {KAFKA_VERSION} already running (pid {pid}) on {settings.bootstrap_servers}"
    if asyncio.run(is_ready(settings.bootstrap_servers)):
        return f"Kafka already answering on {settings.bootstrap_servers} (not started by batchctl)"
    ensure_jars(settings)
    props = _write_config(settings)
    ran_before = (_data_dir(settings) / "meta.properties").exists()
    _format_storage(settings, props)
    recovering = ran_before and not shut_down_cleanly(settings)
    log = settings.kafka_dir / "broker.log"
    heap = f"{settings.kafka_heap_mb}m"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [
                _java(),
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-Djava.awt.headless=true",
                "-Dlog4j.configuration=file:" + str(settings.kafka_dir / "log4j.properties"),
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
    _pid_file(settings).write_text(str(process.pid))
    if recovering:  # as long as it takes, within a bound, saying so
        wait_ready(
            settings.bootstrap_servers,
            max(timeout_s, RECOVERY_TIMEOUT_S),
            process.pid,
            log,
            "its log recovery after an unclean shutdown (a kill or a crash)",
        )
    else:
        wait_ready(settings.bootstrap_servers, timeout_s, process.pid, log)
    return (
        f"Kafka {KAFKA_VERSION} started (pid {process.pid}) on {settings.bootstrap_servers}, "
        f"data in {settings.kafka_dir / 'data'}"
    )


def stop(settings: DevSettings, *, timeout_s: float = 30) -> str:
    pid = running_pid(settings)
    if pid is None:
        return "Kafka is not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    _pid_file(settings).unlink(missing_ok=True)
    return f"Kafka stopped (pid {pid})"


def status(settings: DevSettings) -> str:
    pid = running_pid(settings)
    ready = asyncio.run(is_ready(settings.bootstrap_servers))
    if pid is None:
        return (
            f"Kafka: answering on {settings.bootstrap_servers} (not started by batchctl)"
            if ready
            else "Kafka: not running"
        )
    return (
        f"Kafka: pid {pid}, {'ready' if ready else 'NOT answering'} on {settings.bootstrap_servers}"
    )
