"""Caps on open progress streams (Server-Sent Events), per API key and in all, per API
process: an open stream holds a connection and polls the database, so a client that opens
thousands must not starve everyone else. Beyond a cap the request gets 429."""

import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable

from ingest_api.errors import TooManyStreams


class StreamSlots:
    def __init__(self, per_key: int, total: int):
        self.per_key = per_key
        self.total = total
        self.open_by_key: Counter[str] = Counter()
        self.open = 0

    def take(self, key: str) -> Callable[[], None]:
        """A slot for one stream of ``key`` (the key's hash), or ``TooManyStreams``. Returns
        its release, which may be called more than once."""
        if self.open >= self.total:
            raise TooManyStreams(f"the server has {self.total} progress streams open; try later")
        if self.open_by_key[key] >= self.per_key:
            raise TooManyStreams(f"at most {self.per_key} progress streams per API key are open")
        self.open_by_key[key] += 1
        self.open += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.open -= 1
            self.open_by_key[key] -= 1
            if self.open_by_key[key] <= 0:
                del self.open_by_key[key]

        return release

    def holding(self, key: str, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``stream`` holding a slot of ``key`` (taken now: ``TooManyStreams``) until it ends,
        is closed, or is dropped without having started."""
        release = self.take(key)

        async def held() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                release()

        wrapped = held()
        weakref.finalize(wrapped, release)
        return wrapped
