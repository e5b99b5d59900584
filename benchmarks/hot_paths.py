"""The hot paths' own CPU, in-process, without Kafka or PostgreSQL: a worker's reading and
processing of a no-op and a query item, and the projector's fold of items and outcomes.
Minimum of several rounds of N events each; prints a JSON line last (µs an event).

Run it in two checkouts, alternately, to see what a change costs (the figures in
BENCHMARKS.md, *Stop 18*, are from six alternations):

    python benchmarks/hot_paths.py [--events N] [--rounds R]
"""

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka.structs import ConsumerRecord, TopicPartition

from archive_jobs.noop import NoopHandler
from archive_jobs.query import QueryHandler
from benchmarks.common import machine
from consumers.item_reader import ItemReader
from consumers.processing import RetryPolicy, process_item_now
from events import outcome_wire
from events.codec import encode
from events.models import ItemSubmitted
from projections.projector import Projector
from projections.settings import ProjectorSettings


def _best_us(work: Callable[[], Any], events: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(min(times) / events * 1e6, 3)


def main(events: int, rounds: int) -> dict[str, Any]:
    job = uuid.uuid4()
    figures: dict[str, Any] = {"benchmark": "hot_paths", "events": events, "rounds": rounds}
    inputs = {
        "noop": (NoopHandler(), lambda i: {"n": i}),
        "query": (QueryHandler.__new__(QueryHandler), lambda i: {"content_hash": f"{i:064x}"}),
    }
    for name, (handler, make_input) in inputs.items():
        values = [
            encode(
                ItemSubmitted.new(
                    job_id=job, item_index=i, job_type=handler.job_type, input=make_input(i)
                )
            )
            for i in range(events)
        ]
        read_all = ItemReader(handler).read_all
        figures[f"worker_read_{name}_us"] = _best_us(
            lambda read_all=read_all, values=values: read_all(values), events, rounds
        )
    noop = NoopHandler()
    items = ItemReader(noop).read_all(
        [
            encode(ItemSubmitted.new(job_id=job, item_index=i, job_type="noop", input={"n": i}))
            for i in range(events)
        ]
    )
    policy = RetryPolicy()

    def process() -> None:
        for item in items:
            process_item_now(noop, item, policy)  # type: ignore[arg-type]

    figures["worker_process_noop_us"] = _best_us(process, events, rounds)

    settings = ProjectorSettings()
    projector = Projector(settings, None, None)  # type: ignore[arg-type]
    items_topic, outcomes_topic = settings.topics.items("query"), settings.topics.outcomes

    def record(topic: str, offset: int, value: bytes) -> ConsumerRecord[Any, Any]:
        return ConsumerRecord(topic, 0, offset, 0, 0, b"k", value, None, 0, 0, ())

    batch = {
        TopicPartition(items_topic, 0): [
            record(
                items_topic,
                i,
                encode(
                    ItemSubmitted.new(
                        job_id=job,
                        item_index=i,
                        job_type="query",
                        input={"content_hash": f"{i:064x}"},
                    )
                ),
            )
            for i in range(events)
        ],
        TopicPartition(outcomes_topic, 0): [
            record(
                outcomes_topic,
                i,
                outcome_wire.succeeded(
                    str(job), i, attempts=1, duration_ms=1.0, output={"found": False}
                ),
            )
            for i in range(events)
        ],
    }
    fold_us = _best_us(lambda: projector.fold(batch), 2 * events, rounds)
    figures["projector_fold_us_per_event"] = fold_us
    figures["machine"] = machine()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(main(args.events, args.rounds)))
