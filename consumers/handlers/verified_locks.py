"""Verify-then-lock for proof_lock, run in the verifying process.

The worker's event loop shares one GIL with its threads; the verifying process has a GIL of
its own and spends most of its time in libsodium. So it also takes the lock round trip: it
checks a batch's signatures, locks the proofs whose signatures verify in one transaction
(committed before it answers), and answers each request with the hash's row, or None.
Requests and answers are tuples: they cross a process boundary, and tuples pickle cheaply.
"""

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

import psycopg2

from consumers.handlers.registry_store import Lock, RegistryStore
from consumers.handlers.signatures import verify


class LockRequest(NamedTuple):
    public_key: bytes
    signature: bytes
    content_hash: str
    proof_id: str
    device_id: str
    captured_at: datetime | None
    job_id: str
    item_index: int


class LockedProof(NamedTuple):
    """The hash's row: written by this request, or by whichever item locked it first."""

    content_hash: str
    proof_id: str
    device_id: str
    captured_at: datetime | None
    locked_at: datetime
    job_id: str
    item_index: int


class RegistryUnavailable(Exception):
    """The registry's database failed this batch (the message says how)."""


# One store (connection) per database in each verifying process, kept across batches.
_stores: dict[str, RegistryStore] = {}


def verify_then_lock_all(
    database_url: str, requests: list[LockRequest]
) -> list[LockedProof | None]:
    """A batch for a ``MicroBatcher`` (bind ``database_url`` with ``functools.partial``)."""
    verified = [verify(r.public_key, r.signature, bytes.fromhex(r.content_hash)) for r in requests]
    locks = [
        Lock(
            r.content_hash,
            UUID(r.proof_id),
            r.device_id,
            r.signature,
            r.captured_at,
            UUID(r.job_id),
            r.item_index,
        )
        for r, ok in zip(requests, verified, strict=True)
        if ok
    ]
    if not locks:
        return [None] * len(requests)
    store = _stores.get(database_url)
    if store is None:
        store = _stores[database_url] = RegistryStore(database_url)
    try:
        rows = iter(store.lock(locks))
    except psycopg2.Error as exc:  # its own class: psycopg2's errors do not always pickle
        raise RegistryUnavailable(f"{type(exc).__name__}: {exc}".strip()) from None
    answers: list[LockedProof | None] = []
    for ok in verified:
        if not ok:
            answers.append(None)
            continue
        row = next(rows)
        answers.append(
            LockedProof(
                row.content_hash,
                str(row.proof_id),
                row.device_id,
                row.captured_at,
                row.locked_at,
                str(row.job_id),
                row.item_index,
            )
        )
    return answers
