"""The registry as the handlers use it: async, batched, with a cache of public keys."""

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import psycopg2

from archive_jobs.batching import MicroBatcher
from archive_jobs.registry_store import (
    DeviceRow,
    Enrollment,
    LockedProof,
    LockRequest,
    Lookup,
    ProofRow,
    RegistryStore,
)
from archive_jobs.verified_locks import RegistryUnavailable, verify_then_lock_all
from jobtypes.contract import DependencyUnavailable
from storage.settings import DatabaseSettings

T = TypeVar("T")
R = TypeVar("R")

# Enough for the devices of a large fleet: a key is 32 bytes.
PUBLIC_KEY_CACHE_SIZE = 1_000_000


class DeviceRegistry:
    """Batches every kind of request separately, each on a connection (thread) of its own, so
    a batch of key lookups never waits behind a batch of locks. Proof locks are verified and
    written by two processes of their own (``verified_locks``): verification is CPU-bound, and
    beside the event loop's thread it, and the lock's Python, would wait for the GIL. A
    device's key never changes once enrolled (another key is a conflict), so found keys are
    cached."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        verifies: bool = True,
        verify_in_process: bool = True,
    ):
        """``verifies``: whether signatures are verified here (a process is started for it)."""
        self._database_url = database_url or DatabaseSettings().database_url
        self._stores: list[RegistryStore] = []
        self._batchers: list[MicroBatcher[Any, Any]] = []
        self._keys: dict[str, bytes] = {}
        self.enroll = _answered(self._batched("enroll", lambda store: store.enroll).submit)
        self._public_keys = _answered(
            self._batched("public-keys", lambda store: store.public_keys).submit
        )
        self.look_up = _answered(self._batched("look-up", lambda store: store.look_up).submit)
        self._verify_lock: Callable[[LockRequest], Awaitable[LockedProof | None]] | None = None
        if verifies:
            # A worker never has two locks of one hash in flight (they share a routing key),
            # so a batch may be queued ahead of the one running.
            verify_lock: MicroBatcher[LockRequest, LockedProof | None] = MicroBatcher(
                functools.partial(verify_then_lock_all, self._database_url),
                name="verify-lock",
                in_process=verify_in_process,
                queue_ahead=True,
                workers=2,  # one verifies while the other waits for PostgreSQL
            )
            self._batchers.append(verify_lock)
            self._verify_lock = _answered(verify_lock.submit)

    def _batched(
        self, name: str, method: Callable[[RegistryStore], Callable[[list[T]], list[R]]]
    ) -> MicroBatcher[T, R]:
        store = RegistryStore(self._database_url)
        batcher: MicroBatcher[T, R] = MicroBatcher(method(store), name=f"registry-{name}")
        self._stores.append(store)
        self._batchers.append(batcher)
        return batcher

    def start(self) -> None:
        for batcher in self._batchers:
            batcher.start()

    async def stop(self) -> None:
        for batcher in self._batchers:
            await batcher.stop()
        for store in self._stores:
            store.close()

    async def public_key(self, device_id: str) -> bytes | None:
        key = self._keys.get(device_id)
        if key is None:
            key = await self._public_keys(device_id)
            if key is None:
                return None  # not cached: the device may be enrolled any moment
            if len(self._keys) >= PUBLIC_KEY_CACHE_SIZE:
                del self._keys[next(iter(self._keys))]
            self._keys[device_id] = key
        return key

    async def verify_then_lock(self, request: LockRequest) -> LockedProof | None:
        """Lock the proof when its signature verifies (the hash's row), else None."""
        if self._verify_lock is None:
            raise RuntimeError("this registry was made without verification (verifies=False)")
        return await self._verify_lock(request)


# What says the registry's database does not answer (a restart, a lost connection; a
# deadlock or a cancelled statement too: trying again is right for those as well).
UNAVAILABLE = (psycopg2.OperationalError, psycopg2.InterfaceError, RegistryUnavailable)


def _answered(submit: Callable[[T], Awaitable[R]]) -> Callable[[T], Awaitable[R]]:
    """``submit``, with the database not answering said as ``DependencyUnavailable``."""

    async def submitted(request: T) -> R:
        try:
            return await submit(request)
        except UNAVAILABLE as exc:
            message = f"{type(exc).__name__}: {exc}".strip()
            raise DependencyUnavailable("postgresql", message) from exc

    return submitted


class RegistryBacked:
    """For the handlers of the registry: a registry of their own, opened on ``start`` and
    closed on ``stop``, unless one is given to share (tests, benchmarks). Constructing the
    handler stays free: the API makes one per request to validate items."""

    verifies_signatures: ClassVar[bool] = False

    def __init__(self, registry: DeviceRegistry | None = None):
        self._registry = registry
        self._owns_registry = registry is None

    @property
    def registry(self) -> DeviceRegistry:
        if self._registry is None:
            raise RuntimeError("the handler is not started")
        return self._registry

    async def start(self) -> None:
        if self._owns_registry:
            self._registry = DeviceRegistry(verifies=self.verifies_signatures)
            self._registry.start()

    async def stop(self) -> None:
        if self._owns_registry and self._registry is not None:
            await self._registry.stop()
            self._registry = None


__all__ = [
    "DeviceRegistry",
    "DeviceRow",
    "Enrollment",
    "Lookup",
    "ProofRow",
    "RegistryBacked",
]
