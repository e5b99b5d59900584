"""When a delivery is tried again: which answers are retried, and the schedule.

Retried: timeouts, connection and DNS errors, 5xx, 408 and 429. Not retried: other 4xx
(the receiver refuses it: 410 Gone above all), 3xx (redirects are never followed), and a
URL the policy refuses. The delay doubles from a base up to a cap, with jitter (half of it
random, so receivers coming back are not hit by every sender at once); a ``Retry-After``
answer is honoured instead. Nothing is tried after the retry window.
"""

import random
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

RETRIED_STATUSES = frozenset({408, 429})


def retried(status_code: int) -> bool:
    return status_code in RETRIED_STATUSES or 500 <= status_code <= 599


def backoff_s(attempts: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """The delay after ``attempts`` failed attempts (1 after the first): up to
    ``base_s * 2**(attempts-1)`` and ``max_s``, its upper half random."""
    ceiling = min(max_s, base_s * 2 ** min(attempts - 1, 60))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header's delay: seconds, or an HTTP date; None if absent or not
    understood."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), 10**9))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def next_attempt_at(
    now: datetime,
    attempts: int,
    retry_until: datetime,
    *,
    base_s: float,
    max_s: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after ``attempts`` failed ones, or None: the window is over (or the
    receiver asks to wait past it)."""
    if now >= retry_until:
        return None
    if retry_after is not None:
        when = now + timedelta(seconds=retry_after)
        return when if when <= retry_until else None
    delay = backoff_s(attempts, base_s, max_s, rng or random.Random())
    return min(now + timedelta(seconds=delay), retry_until)
