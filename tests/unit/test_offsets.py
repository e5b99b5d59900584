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


def test_an_offset_acknowledged_twice_moves_nothing_the_second_time():
    """(An item failed ``internal_error`` after its outcome had been sent.)"""
    offsets = PartitionOffsets()
    for o in (10, 11, 12):
        offsets.track(o)
    offsets.ack(10)
    offsets.ack(12)
    offsets.ack(10)  # done already
    offsets.ack(12)  # acknowledged already, not yet committable
    assert offsets.to_commit() == 11
    offsets.ack(11)
    assert offsets.to_commit() == 13 and offsets.in_flight == 0
    offsets.ack(11)
    assert offsets.to_commit() == 13 and offsets._acked == set()


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


@given(
    st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=300),
    st.lists(st.integers(min_value=0, max_value=299), max_size=20),
)
def test_acks_mostly_in_order_with_a_few_late_ones(gaps, late_positions):
    """As a worker acks: in offset order, but for the few records that waited."""
    offsets, tracked = PartitionOffsets(), []
    position = 0
    for gap in gaps:
        position += gap
        offsets.track(position)
        tracked.append(position)
    late = {tracked[i] for i in late_positions if i < len(tracked)}
    acked: set[int] = set()
    for offset in [o for o in tracked if o not in late] + sorted(late, reverse=True):
        offsets.ack(offset)
        acked.add(offset)
        done = None  # the last of the acknowledged prefix: the commit is just past it
        for o in tracked:
            if o not in acked:
                break
            done = o
        assert offsets.to_commit() == (None if done is None else done + 1)  # none committed
    assert offsets.to_commit() == position + 1 and offsets.in_flight == 0
