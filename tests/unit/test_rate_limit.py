from unittest.mock import patch

from ingest_api.rate_limit import RateLimiter


def test_a_burst_then_the_steady_rate():
    clock = [100.0]
    with patch("ingest_api.rate_limit.time.monotonic", lambda: clock[0]):
        limiter = RateLimiter(rate=2, burst=3)
        assert [limiter.take("k") for _ in range(3)] == [0, 0, 0]
        assert limiter.take("k") == 0.5  # one token every half second
        clock[0] += 0.5
        assert limiter.take("k") == 0
        assert limiter.take("other") == 0  # keys are limited separately


def test_tokens_do_not_pile_up_beyond_the_burst():
    clock = [0.0]
    with patch("ingest_api.rate_limit.time.monotonic", lambda: clock[0]):
        limiter = RateLimiter(rate=10, burst=2)
        limiter.take("k")
        clock[0] += 3600
        assert [limiter.take("k") for _ in range(3)][-1] > 0
