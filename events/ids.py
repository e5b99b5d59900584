"""Deterministic event ids.

An item is identified by ``(job_id, item_index)``. Its ``ItemSubmitted`` and its terminal
outcome get ids derived from that pair, so a duplicate (a republished submission, or a second
outcome produced around a worker crash) is recognisable by its id alone.
"""

from uuid import UUID, uuid5

NAMESPACE = UUID("5d0f6c3e-2f4b-4e51-9a43-7f1d2a8b9c01")


def job_submitted_id(job_id: UUID) -> UUID:
    return uuid5(NAMESPACE, f"{job_id}/submitted")


def job_cancel_requested_id(job_id: UUID) -> UUID:
    return uuid5(NAMESPACE, f"{job_id}/cancel")


def item_submitted_id(job_id: UUID, item_index: int) -> UUID:
    return uuid5(NAMESPACE, f"{job_id}/{item_index}/submitted")


def item_outcome_id(job_id: UUID, item_index: int) -> UUID:
    """One id for every terminal outcome of an item: any two outcomes of it are duplicates."""
    return uuid5(NAMESPACE, f"{job_id}/{item_index}/outcome")
