import time
import uuid

from consumers.cancellations import CancellationWatcher
from streaming.settings import KafkaSettings


def test_cancelled_jobs_are_forgotten_after_the_ttl():
    watcher = CancellationWatcher(KafkaSettings(), None, "main", ttl_s=60)
    old, recent = str(uuid.uuid4()), str(uuid.uuid4())
    now = time.monotonic()
    watcher.cancelled = {old: now - 120, recent: now - 10}
    watcher._prune()
    assert not watcher.is_cancelled(old)
    assert watcher.is_cancelled(recent)
