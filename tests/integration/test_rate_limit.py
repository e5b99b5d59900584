"""The per-key token bucket on the key's row in PostgreSQL: a burst, then the steady rate,
never more than the burst saved up, keys apart, a revoked key not admitted."""

import asyncio

from sqlalchemy.orm import sessionmaker

from ingest_api.api_keys import create_key, hash_key, revoke_key
from ingest_api.rate_limit import Admissions, Ask, admit_all
from ingest_api.statements import Statements


async def test_a_burst_then_the_steady_rate_and_no_more_than_the_burst_saved(engine, database_url):
    statements = Statements(database_url, max_size=2)
    await statements.open()
    admit = Admissions(statements).admit
    with sessionmaker(engine)() as session:
        key = create_key(session, user_id="bucket")
        other = create_key(session, user_id="bucket-other")
    key_hash = hash_key(key.secret)

    async def take() -> float:
        admission = await admit(key_hash=key_hash, rate=2, burst=3)
        assert admission is not None and admission.owner.user_id == "bucket"
        return admission.wait_s

    try:
        assert [await take() for _ in range(3)] == [0, 0, 0]
        waits = [await take() for _ in range(2)]
        assert all(0.45 < w <= 0.5 for w in waits), waits  # a token every half second
        other_admission = await admit(key_hash=hash_key(other.secret), rate=2, burst=3)
        assert other_admission is not None and other_admission.wait_s == 0
        await asyncio.sleep(0.55)
        assert await take() == 0
        assert await take() > 0
        await asyncio.sleep(2.2)  # four tokens' worth of time, but at most the burst is saved
        assert [await take() for _ in range(4)][:3] == [0, 0, 0]
        assert await take() > 0

        with sessionmaker(engine)() as session:
            revoke_key(session, key_id=key.key_id)
        assert await admit(key_hash=key_hash, rate=2, burst=3) is None
        assert await admit(key_hash=hash_key("aob_unknown"), rate=2, burst=3) is None
    finally:
        await statements.close()


async def test_asks_in_one_statement_take_tokens_as_if_one_after_another(engine, database_url):
    statements = Statements(database_url, max_size=2)
    await statements.open()
    with sessionmaker(engine)() as session:
        key = hash_key(create_key(session, user_id="bucket-batch").secret)
        other = hash_key(create_key(session, user_id="bucket-batch-other").secret)
    try:
        asks = [Ask(key, 2, 3)] * 5 + [Ask(hash_key("aob_unknown"), 2, 3), Ask(other, 2, 3)]
        answers = await admit_all(statements, asks)
        waits = [None if a is None else a.wait_s for a in answers]
        assert waits[:3] == [0, 0, 0] and waits[5] is None and waits[6] == 0
        assert all(w is not None and 0.45 < w <= 0.5 for w in waits[3:5]), waits
        assert {a.owner.user_id for a in answers if a is not None} == {
            "bucket-batch",
            "bucket-batch-other",
        }
        # the refused asks took nothing: half a second on, one token, not more
        await asyncio.sleep(0.55)
        later = await admit_all(statements, [Ask(key, 2, 3)] * 2)
        assert [a.wait_s == 0 for a in later if a is not None] == [True, False]
        # concurrent callers share statements, and the bucket holds across them
        admissions = Admissions(statements)
        await asyncio.sleep(1.6)  # the bucket full again (3)
        many = await asyncio.gather(
            *(admissions.admit(key_hash=key, rate=2, burst=3) for _ in range(8))
        )
        assert sum(1 for a in many if a is not None and a.wait_s == 0) == 3
    finally:
        await statements.close()
