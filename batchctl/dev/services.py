"""``batchctl dev up``: both services, then topics and migrations, in order."""

import asyncio
import os
from collections.abc import Iterator

from batchctl.dev import kafka_broker, postgres
from batchctl.dev.settings import DevSettings


def up(settings: DevSettings | None = None) -> Iterator[str]:
    """Bring everything up; yield a line per step. Exports the resulting
    ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` into this process's environment."""
    from jobtypes.registry import job_types
    from migrations.runner import upgrade
    from streaming.settings import KafkaSettings
    from streaming.topics_admin import create_topics

    settings = settings or DevSettings()
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if servers and not kafka_broker.is_ours(settings, servers):
        kafka_broker.wait_ready(servers, timeout_s=30)
        yield f"Kafka from KAFKA_BOOTSTRAP_SERVERS ({servers}) answers"
    else:  # ours (also when .dev/env named it): started again if it died
        yield kafka_broker.start(settings)
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
        os.environ["BATCH_TOPIC_REPLICATION"] = str(settings.replication_factor)
    url, line = postgres.start(settings)
    os.environ["DATABASE_URL"] = url
    yield line
    created = asyncio.run(create_topics(KafkaSettings(), job_types()))
    yield f"topics created: {', '.join(created)}" if created else "topics: all exist"
    upgrade(url)
    yield "database schema at head"
    settings.dir.mkdir(parents=True, exist_ok=True)
    env_file = settings.dir / "env"
    replication = os.environ.get("BATCH_TOPIC_REPLICATION")
    env_file.write_text(
        f"KAFKA_BOOTSTRAP_SERVERS={os.environ['KAFKA_BOOTSTRAP_SERVERS']}\nDATABASE_URL={url}\n"
        + (f"BATCH_TOPIC_REPLICATION={replication}\n" if replication else "")
    )
    yield f"connection settings written to {env_file} (`set -a; . {env_file}; set +a`)"
