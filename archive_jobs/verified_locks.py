"""Verify-then-lock for proof_lock, run in the verifying process.

The worker's event loop shares one GIL with its threads; the verifying process has a GIL of
its own and spends most of its time in libsodium. So it also takes the lock round trip: it
checks a batch's signatures, locks the proofs whose signatures verify in one transaction
(committed before it answers), and answers each request with the hash's row, or None.
Requests and answers are plain tuples (``registry_store.LockRequest``, ``LockedProof``):
they cross a process boundary, and plain tuples pickle cheaply.
"""

import psycopg2

from archive_jobs.registry_store import LockedProof, LockRequest, RegistryStore
from archive_jobs.signatures import verify


class RegistryUnavailable(Exception):
    """The registry's database did not answer for this batch (the message says how)."""


class RegistryFailed(Exception):
    """The registry's database failed this batch otherwise (the message says how)."""


class RegistryRefusedData(ValueError):
    """The registry's database refused a value of this batch as data (``batching`` then
    finds the item it belongs to)."""


# One store (connection) per database in each verifying process, kept across batches.
_stores: dict[str, RegistryStore] = {}


def verify_then_lock_all(
    database_url: str, requests: list[LockRequest]
) -> list[LockedProof | None]:
    """A batch for a ``MicroBatcher`` (bind ``database_url`` with ``functools.partial``)."""
    verified = [verify(r[0], r[1], bytes.fromhex(r[2])) for r in requests]
    to_lock = [r for r, ok in zip(requests, verified, strict=True) if ok]
    if not to_lock:
        return [None] * len(requests)
    store = _stores.get(database_url)
    if store is None:
        store = _stores[database_url] = RegistryStore(database_url)
    try:
        rows = iter(store.lock(to_lock))
    except (psycopg2.DataError, psycopg2.IntegrityError) as exc:  # (see below)
        raise RegistryRefusedData(f"{type(exc).__name__}: {exc}".strip()) from None
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:  # (see below)
        raise RegistryUnavailable(f"{type(exc).__name__}: {exc}".strip()) from None
    except psycopg2.Error as exc:  # its own class: psycopg2's errors do not always pickle
        raise RegistryFailed(f"{type(exc).__name__}: {exc}".strip()) from None
    return [next(rows) if ok else None for ok in verified]
