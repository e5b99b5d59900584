import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.offsets import PartitionOffsets


def test_nothing_is_committable_before_the_first_ack():
    offsets = PartitionOffsets()
    for o in (10, 11, 12):
        offsets.track(o)
    assert offsets.to_commit() is None


def test_a_slow_record_holds_back_the_commit_of_later_ones():
    offsets = PartitionOffsets()
    for o in (10, 11, 12, 13):
        offsets.track(o)
    offsets.ack(12)
    offsets.ack(13)
    assert offsets.to_commit() is None  # 10 and 11 are unfinished
    offsets.ack(10)
    assert offsets.to_commit() == 11
    offsets.committed(11)
    assert offsets.to_commit() is None  # unchanged since the last commit
    offsets.ack(11)
    assert offsets.to_commit() == 14
    assert offsets.in_flight == 0


def test_offsets_must_be_tracked_in_order():
    offsets = PartitionOffsets()
    offsets.track(5)
    with pytest.raises(ValueError):
        offsets.track(5)


@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=200),
    st.randoms(use_true_random=False),
)
def test_the_position_never_passes_an_unacknowledged_offset(gaps, rnd: random.Random):
    offsets, tracked, acked = PartitionOffsets(), [], set()
    position = 0
    for gap in gaps:  # offsets may have gaps (compaction, transactions markers)
        position += gap
        offsets.track(position)
        tracked.append(position)
    order = tracked[:]
    rnd.shuffle(order)
    for offset in order:
        offsets.ack(offset)
        acked.add(offset)
        committable = offsets.to_commit()
        if committable is not None:
            assert all(o in acked for o in tracked if o < committable)
    assert offsets.to_commit() == tracked[-1] + 1
