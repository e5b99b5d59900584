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
