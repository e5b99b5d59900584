"""Dependencies a worker's handler found unavailable, and for how many items.

While one is down, the worker fetches nothing new (its partitions are paused, but it keeps
polling, so it stays in its group) and the items that met the outage try again with capped
backoff and jitter, without spending their attempts. When the last of them gets an answer,
the worker resumes fetching."""

import random
from collections import Counter

from consumers.metrics import WORKER_PAUSED

BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 2.0


class Outage:
    def __init__(self, job_type: str):
        self.job_type = job_type
        self.waiting: Counter[str] = Counter()  # items waiting, by dependency

    @property
    def down(self) -> list[str]:
        """The dependencies some item is waiting for."""
        return sorted(self.waiting)

    def met(self, dependency: str) -> None:
        """An item found ``dependency`` unavailable and waits for it."""
        if not self.waiting[dependency]:
            WORKER_PAUSED.labels(self.job_type, dependency).set(1)
        self.waiting[dependency] += 1

    def over(self, dependency: str) -> None:
        """An item that waited for ``dependency`` got an answer (or gave up waiting)."""
        self.waiting[dependency] -= 1
        if self.waiting[dependency] <= 0:
            del self.waiting[dependency]
            WORKER_PAUSED.labels(self.job_type, dependency).set(0)

    @staticmethod
    def delay(tries: int) -> float:
        """Capped exponential backoff with jitter before try ``tries + 1``."""
        ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(tries, 16))
        return random.uniform(ceiling / 2, ceiling)
