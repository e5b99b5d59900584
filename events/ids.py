"""Deterministic event ids.

An item is identified by ``(job_id, item_index)``. Its ``ItemSubmitted`` and its terminal
outcome get ids derived from that pair, so a duplicate (a republished submission, or a second
outcome produced around a worker crash) is recognisable by its id alone.
"""

import functools
import hashlib
from collections.abc import Iterable
from uuid import UUID

import uuid_utils

NAMESPACE = UUID("5d0f6c3e-2f4b-4e51-9a43-7f1d2a8b9c01")


def uuid5(namespace: UUID, name: str) -> UUID:
    """RFC 4122 UUIDv5, as ``uuid.uuid5`` computes it, without its checks and conversions
    (the per-job ids; the per-item ones are ``ItemUuid5``'s)."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return UUID(bytes=bytes(digest))


class ItemUuid5:
    """``str(uuid5(namespace, f"{job_id}/{item_part}"))`` for the items of jobs, without
    standard ``UUID`` objects: per-item ids on the hot paths (the API's submissions, the
    workers' outcomes): uuid-utils hashes and formats in Rust, where hashlib plus formatting
    in Python runs Python code per id."""

    def __init__(self, namespace: UUID):
        self._namespace = uuid_utils.UUID(bytes=namespace.bytes)

    def text(self, job_id: str, item_part: str) -> str:
        return self.ascii_text(job_id, item_part).decode()

    def ascii_text(self, job_id: str, item_part: str) -> bytes:
        """``text`` as ASCII bytes (what a hot path writes into an event)."""
        return str(_uuid5(self._namespace, f"{job_id}/{item_part}")).encode()

    def ascii_texts(self, job_id: str, item_parts: Iterable[str]) -> list[bytes]:
        """``text`` of many items of one job, as ASCII bytes."""
        text = self.ascii_text
        return [text(job_id, part) for part in item_parts]


_uuid5 = uuid_utils.uuid5

ITEM_IDS = ItemUuid5(NAMESPACE)  # the ids of items' events (ItemSubmitted, outcomes)


@functools.lru_cache(maxsize=4096)
def job_id_text(job_id: UUID) -> str:
    """``str(job_id)``, remembered: the per-item paths format the same few job ids over and
    over, and formatting a UUID costs more than the rest of a default routing key."""
    return str(job_id)


def job_submitted_id(job_id: UUID) -> UUID:
    return uuid5(NAMESPACE, f"{job_id}/submitted")


def job_cancel_requested_id(job_id: UUID) -> UUID:
    return uuid5(NAMESPACE, f"{job_id}/cancel")


def job_finished_id(job_id: UUID, status: str) -> UUID:
    """The id of a job's JobFinished: the same whoever announces it, however often."""
    return uuid5(NAMESPACE, f"{job_id}/finished/{status}")


# The names an item's events' ids are made from, after ``{job_id}/`` (the hot paths hash
# them with ``ITEM_IDS``, the rest with ``uuid5``: the same ids).


def item_submitted_name(item_index: int) -> str:
    return f"{item_index}/submitted"


def item_outcome_name(item_index: int) -> str:
    return f"{item_index}/outcome"


def item_submitted_id(job_id: UUID, item_index: int) -> UUID:
    return uuid5(NAMESPACE, f"{job_id}/{item_submitted_name(item_index)}")


def item_outcome_id(job_id: UUID, item_index: int) -> UUID:
    """One id for every terminal outcome of an item: any two outcomes of it are duplicates."""
    return uuid5(NAMESPACE, f"{job_id}/{item_outcome_name(item_index)}")
