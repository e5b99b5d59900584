"""Logging set-up for every process started by batchctl: readable lines on a terminal, one
JSON object per line otherwise (for log collectors), with the part's name and any
``extra={"job_id": ...}`` fields of the record. ``LOG_FORMAT=json|text`` overrides."""

import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter


def configure(name: str) -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    wanted = os.environ.get("LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json")
    handler = logging.StreamHandler(sys.stderr)
    if wanted == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"part": name},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
        )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
