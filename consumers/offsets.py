"""Which offset of a partition may be committed.

An offset is committable only when its outcome, and the outcomes of every earlier offset of
the partition, are acknowledged by Kafka. A slow item therefore holds back the commits of
the items after it, and nothing is ever committed ahead of an unfinished item.
"""

from collections import deque
from itertools import pairwise


class PartitionOffsets:
    def __init__(self) -> None:
        self._pending: deque[int] = deque()  # tracked offsets, ascending, not yet committable
        self._acked: set[int] = set()
        self._position: int | None = None  # next offset to commit (all below are done)
        self._committed: int | None = None
        self.running = 0  # records being processed now
        self.released = False  # the partition was revoked: its queued records are dropped

    def track(self, offset: int) -> None:
        self.track_all([offset])

    def track_all(self, offsets: list[int]) -> None:
        """Track fetched offsets, ascending (a fetched batch of the partition)."""
        if not offsets:
            return
        last = self._pending[-1] if self._pending else -1
        if offsets[0] <= last or any(a >= b for a, b in pairwise(offsets)):
            raise ValueError(f"offsets {offsets[0]}..{offsets[-1]} tracked out of order")
        self._pending.extend(offsets)

    def ack(self, offset: int) -> None:
        pending, acked = self._pending, self._acked
        if pending and pending[0] == offset:  # the oldest one: the common, in-order case
            pending.popleft()
            self._position = offset + 1
            if not acked:
                return
        elif pending and offset > pending[0]:
            acked.add(offset)
        else:  # acknowledged before (an outcome sent again after a bug): nothing moves
            return
        while pending and pending[0] in acked:
            done = pending.popleft()
            acked.discard(done)
            self._position = done + 1

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def to_commit(self) -> int | None:
        """The position to commit now, or None when it has not moved since the last commit."""
        if self._position is None or self._position == self._committed:
            return None
        return self._position

    def committed(self, position: int) -> None:
        self._committed = position
