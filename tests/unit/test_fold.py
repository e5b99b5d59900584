import random
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.fold import Changes, fold
from tests import factories as f


def test_submission_and_outcome_coalesce_into_one_item_change():
    job = uuid4()
    changes = fold([f.item_submitted(job, 0), f.succeeded(job, 0)])
    assert len(changes.items) == 1
    item = changes.items[(job.int, 0)]
    assert item.submitted and item.input_data == {"content_hash": f"{0:064x}"}
    assert item.status == "success" and item.output_data == {"n": 0}


def test_first_terminal_outcome_wins():
    job = uuid4()
    changes = fold([f.failed(job, 0, code="first"), f.succeeded(job, 0), f.cancelled(job, 0)])
    item = changes.items[(job.int, 0)]
    assert (item.status, item.error_code) == ("failed", "first")


def test_duplicates_change_nothing():
    job = uuid4()
    events = [f.job_submitted(job, 2), f.item_submitted(job, 0), f.succeeded(job, 0)]
    assert fold(events).items == fold(events + events).items
    assert fold(events).jobs == fold(events + events).jobs


def test_outcome_before_submission_is_the_same_item_change():
    job = uuid4()
    in_order = fold([f.item_submitted(job, 1), f.failed(job, 1)])
    reversed_ = fold([f.failed(job, 1), f.item_submitted(job, 1)])
    assert in_order.items == reversed_.items


def test_first_job_submission_wins_and_earliest_cancel_is_kept():
    job = uuid4()
    first, second = f.job_submitted(job, 5, user="alice"), f.job_submitted(job, 9, user="eve")
    changes = fold(
        [first, f.cancel_requested(job, when=3), second, f.cancel_requested(job, when=2)]
    )
    assert changes.jobs[job].submitted == first
    assert changes.jobs[job].cancel_requested_at == f.at(2)


def test_positions_are_the_next_offset_per_partition():
    changes = Changes()
    for offset in (4, 9, 7):
        changes.advance("t", 0, offset)
    changes.advance("t", 1, 0)
    assert changes.positions == {("t", 0): 10, ("t", 1): 1}


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=30))
def test_any_order_of_a_jobs_events_folds_to_the_same_changes(rnd: random.Random, total: int):
    """One outcome per item: the order across topics and partitions must not matter."""
    _, events = f.mixed_job(total)
    shuffled = events + events[: rnd.randrange(len(events))]  # some duplicates too
    rnd.shuffle(shuffled)
    assert fold(shuffled).items == fold(events).items
    assert fold(shuffled).jobs == fold(events).jobs
