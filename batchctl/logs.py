"""Logging set-up for every process started by batchctl: readable lines on a terminal, one
JSON object per line otherwise (for log collectors), with the part's name and any
``extra={"job_id": ...}`` fields of the record. ``LOG_FORMAT=json|text`` overrides.

While a broker is down, aiokafka logs the same failure every 100 ms from each client; those
repeats are folded into one line per message and logger every ``REPEATS_WINDOW_S``, which
says how many it stands for."""

import logging
import os
import sys
import time

from pythonjsonlogger.json import JsonFormatter

REPEATS_WINDOW_S = 10.0


class FoldRepeats(logging.Filter):
    """Lets the first record of a (logger, message template) through, drops its repeats for
    ``window_s``, and lets the next one through saying how many were dropped. Only for the
    loggers under ``prefix`` (the Kafka client's); ours log once per state change."""

    def __init__(self, prefix: str = "aiokafka", window_s: float = REPEATS_WINDOW_S):
        super().__init__()
        self.prefix, self.window_s = prefix, window_s
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # -> (passed at, dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        passed_at, dropped = self._seen.get(key, (-self.window_s, 0))
        if now - passed_at < self.window_s:
            self._seen[key] = (passed_at, dropped + 1)
            return False
        if len(self._seen) > 1000:  # messages with their values in the template
            self._seen.clear()
        self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like it in the last {now - passed_at:.0f}s)"
        return True


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
    handler.addFilter(FoldRepeats())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
