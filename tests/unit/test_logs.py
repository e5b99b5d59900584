"""Log lines: JSON objects (with the part and the record's extra fields) when not on a
terminal, readable text when asked."""

import json
import logging

import pytest

from batchctl import logs


@pytest.fixture(autouse=True)
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_part_and_the_job_id(monkeypatch, capsys):
    monkeypatch.setenv("LOG_FORMAT", "json")
    logs.configure("worker:query")
    logging.getLogger("consumers.x").warning("item %d failed", 7, extra={"job_id": "J1"})
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["part"] == "worker:query" and line["job_id"] == "J1"
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING",
        "consumers.x",
        "item 7 failed",
    )


def test_text_when_asked(monkeypatch, capsys):
    monkeypatch.setenv("LOG_FORMAT", "text")
    logs.configure("projector")
    logging.getLogger("p").warning("hello")
    assert "projector WARNING p: hello" in capsys.readouterr().err


def test_the_kafka_clients_repeats_are_folded_into_one_line_per_window(monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 3.0, 10.5, 10.6])
    monkeypatch.setattr(logs.time, "monotonic", lambda: next(clock))
    fold = logs.FoldRepeats(window_s=10)

    def record(name: str, msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)

    down = "Unable connect to node with id %s: %s"
    first = record("aiokafka", down, 1, "refused")
    assert fold.filter(first) and first.getMessage() == "Unable connect to node with id 1: refused"
    assert not fold.filter(record("aiokafka", down, 1, "refused"))
    other = record("aiokafka.consumer.fetcher", "Failed fetch messages from %s", 1)
    assert fold.filter(other)  # another logger or message: its own count
    assert not fold.filter(record("aiokafka", down, 1, "refused"))
    later = record("aiokafka", down, 1, "refused")
    assert fold.filter(later)
    assert later.getMessage() == (
        "Unable connect to node with id 1: refused (2 more like it in the last 10s)"
    )
    assert fold.filter(record("projections.app", "database unavailable"))  # ours: untouched
