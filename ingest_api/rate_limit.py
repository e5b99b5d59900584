"""The per-key rate limit: a token bucket per API key, ``rate`` requests a second on average
and up to ``burst`` at once, kept on the key's row in PostgreSQL, so every API process takes
from the same bucket and the limit holds however many processes serve the key (and whichever
one a client's connections reach).

Finding the key and taking a token are one statement, one round trip, as finding the key
alone was; the row's lock orders concurrent requests of a key. Its commit does not wait for
the disk (``synchronous_commit`` off for this statement's transaction only, set by the
statement itself): a crash of PostgreSQL may forget the last fraction of a second of tokens
taken, which refills a bucket a little early and loses nothing else. (Waiting for the disk
would hold the row's lock through a flush: one key's requests would queue behind each
other's.)"""

from dataclasses import dataclass

from ingest_api.api_keys import KeyOwner
from ingest_api.statements import Statements

_TAKE = """
WITH no_flush AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)),
key AS (
    SELECT api_keys.id, LEAST(
        $3::float8,
        COALESCE(rate_tokens, $3::float8) + $2::float8 * GREATEST(
            0, EXTRACT(EPOCH FROM clock_timestamp() - COALESCE(rate_at, clock_timestamp()))
        )
    ) AS tokens
    FROM api_keys, no_flush
    WHERE key_hash = $1 AND revoked_at IS NULL
    FOR UPDATE OF api_keys
)
UPDATE api_keys
SET rate_tokens = CASE WHEN key.tokens >= 1 THEN key.tokens - 1 ELSE key.tokens END,
    rate_at = clock_timestamp()
FROM key
WHERE api_keys.id = key.id
RETURNING api_keys.user_id, api_keys.interactive_max_items, key.tokens
"""


@dataclass(frozen=True)
class Admission:
    owner: KeyOwner
    wait_s: float  # 0: admitted; else the seconds until the key's next token


async def admit(
    statements: Statements, *, key_hash: str, rate: float, burst: int
) -> Admission | None:
    """Take a token of the key with this hash (None: no such key, or revoked)."""
    row = await statements.fetchrow(_TAKE, key_hash, rate, burst)
    if row is None:
        return None
    user_id, interactive_max_items, tokens = row
    wait_s = 0.0 if tokens >= 1 else (1 - tokens) / rate
    return Admission(KeyOwner(user_id, interactive_max_items), wait_s)
