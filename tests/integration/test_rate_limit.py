"""The per-key token bucket on the key's row in PostgreSQL: a burst, then the steady rate,
never more than the burst saved up, keys apart, a revoked key not admitted."""

import asyncio

from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key, hash_key, revoke_key
from ingest_api.rate_limit import admit
from ingest_api.statements import Statements


async def test_a_burst_then_the_steady_rate_and_no_more_than_the_burst_saved(engine, database_url):
    statements = Statements(database_url, max_size=2)
    await statements.open()
    with sessionmaker(engine)() as session:
        key = create_key(session, user_id="bucket")
        other = create_key(session, user_id="bucket-other")
    key_hash = hash_key(key.secret)

    async def take() -> float:
        admission = await admit(statements, key_hash=key_hash, rate=2, burst=3)
        assert admission is not None and admission.owner.user_id == "bucket"
        return admission.wait_s

    try:
        assert [await take() for _ in range(3)] == [0, 0, 0]
        waits = [await take() for _ in range(2)]
        assert all(0.45 < w <= 0.5 for w in waits), waits  # a token every half second
        other_admission = await admit(statements, key_hash=hash_key(other.secret), rate=2, burst=3)
        assert other_admission is not None and other_admission.wait_s == 0
        await asyncio.sleep(0.55)
        assert await take() == 0
        assert await take() > 0
        await asyncio.sleep(2.2)  # four tokens' worth of time, but at most the burst is saved
        assert [await take() for _ in range(4)][:3] == [0, 0, 0]
        assert await take() > 0

        with sessionmaker(engine)() as session:
            revoke_key(session, key_id=key.key_id)
        assert await admit(statements, key_hash=key_hash, rate=2, burst=3) is None
        assert await admit(statements, key_hash=hash_key("aob_unknown"), rate=2, burst=3) is None
    finally:
        await statements.close()
