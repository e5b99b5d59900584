"""The per-key rate limit: a token bucket per API key, ``rate`` requests a second on average
and up to ``burst`` at once, kept on the key's row in PostgreSQL, so every API process takes
from the same bucket and the limit holds however many processes serve the key (and whichever
one a client's connections reach).

Finding the keys and taking their tokens is one statement for every request waiting at the
moment (``Admissions``: a request alone runs at once, requests arriving together share a
round trip); the rows' locks, taken in key order, order concurrent statements. A key with
``n`` requests in a statement takes up to ``n`` whole tokens: its first requests are
admitted, the rest wait, as if they had come one after another. The commit does not wait
for the disk (``synchronous_commit`` off for this statement's transaction only, set by the
statement itself): a crash of PostgreSQL may forget the last fraction of a second of tokens
taken, which refills a bucket a little early and loses nothing else. (Waiting for the disk
would hold the rows' locks through a flush: one key's requests would queue behind each
other's.)"""

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ingest_api.api_keys import KeyOwner
from ingest_api.coalescer import Coalescer
from ingest_api.statements import Statements

_TAKE = """
WITH no_flush AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)),
asked AS (
    SELECT asked_hash, count(*)::int AS asked FROM unnest($1::text[]) AS asked_hash
    GROUP BY asked_hash
),
key AS (
    SELECT api_keys.id, asked.asked, LEAST(
        $3::float8,
        COALESCE(rate_tokens, $3::float8) + $2::float8 * GREATEST(
            0, EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(rate_at, clock_timestamp()))
        )
    ) AS tokens
    FROM api_keys JOIN asked ON api_keys.key_hash = asked.asked_hash, no_flush
    WHERE revoked_at IS NULL
    ORDER BY api_keys.id
    FOR UPDATE OF api_keys
)
UPDATE api_keys
SET rate_tokens = key.tokens - LEAST(key.asked, floor(GREATEST(key.tokens, 0))),
    rate_at = clock_timestamp()
FROM key
WHERE api_keys.id = key.id
RETURNING api_keys.key_hash, api_keys.user_id, api_keys.interactive_max_items, key.tokens
"""


@dataclass(frozen=True)
class Admission:
    owner: KeyOwner
    wait_s: float  # 0: admitted; else the seconds until the key's next token


class Ask(NamedTuple):
    key_hash: str
    rate: float
    burst: int


async def admit_all(statements: Statements, asks: Sequence[Ask]) -> list[Admission | None]:
    """Take a token for each ask, in order (None: no such key, or revoked)."""
    answers: list[Admission | None] = [None] * len(asks)
    by_limits: dict[tuple[float, int], list[int]] = {}
    for index, ask in enumerate(asks):
        by_limits.setdefault((ask.rate, ask.burst), []).append(index)
    for (rate, burst), indexes in by_limits.items():
        rows = await statements.fetch(_TAKE, [asks[i].key_hash for i in indexes], rate, burst)
        found = {row[0]: row for row in rows}
        taken: dict[str, int] = {}  # the key's asks answered so far
        for i in indexes:
            row = found.get(asks[i].key_hash)
            if row is None:
                continue
            _, user_id, interactive_max_items, tokens = row
            before = taken.get(row[0], 0)
            taken[row[0]] = before + 1
            left = tokens - min(before, math.floor(max(tokens, 0)))
            wait_s = 0.0 if left >= 1 else (1 - left) / rate
            answers[i] = Admission(KeyOwner(user_id, interactive_max_items), wait_s)
    return answers


class Admissions:
    """Takes requests' tokens, many requests to a statement (``ingest_api.coalescer``)."""

    def __init__(self, statements: Statements):
        self._take: Coalescer[Ask, Admission | None] = Coalescer(
            functools.partial(admit_all, statements)
        )

    async def admit(self, *, key_hash: str, rate: float, burst: int) -> Admission | None:
        """Take a token of the key with this hash (None: no such key, or revoked)."""
        return await self._take(Ask(key_hash, rate, burst))
