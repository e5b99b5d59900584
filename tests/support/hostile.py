"""Hostile values for property tests: every control character and lone surrogates, integers
of any size, NaN and infinities, nesting around the limit; and the contract's limits
(``events.limits``) written plainly, to hold the code to."""

import math
from typing import Any

from hypothesis import strategies as st

from events.limits import MAX_JSON_DEPTH

FORBIDDEN = {chr(c) for c in range(0x20)} - {"\t", "\n", "\r"}


def past_the_limits(value: Any, depth: int = 1) -> bool:
    """Whether a JSON-like value breaks the contract's limits."""
    if isinstance(value, str):
        return any(c in FORBIDDEN or 0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return not -(2**63) <= value < 2**63
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return depth > MAX_JSON_DEPTH or any(
            past_the_limits(k) or past_the_limits(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, list):
        return depth > MAX_JSON_DEPTH or any(past_the_limits(v, depth + 1) for v in value)
    raise AssertionError(value)


def nested(depth: int, leaf: Any = 1) -> dict[str, Any]:
    """A JSON object ``depth`` levels deep."""
    value: Any = leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return {"a": value}


texts = st.text(st.characters(codec=None, categories=["Cc", "Cs", "Ll", "Nd", "Zs"]), max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**40])
    | st.floats()
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=12,
)
KNOWN_HOSTILE: list[Any] = [
    "\x00",
    "nul \x00 inside",
    "\x1b[31mred\x1b[0m",
    "\ud800",
    2**63,
    -(2**63) - 1,
    10**400,
    float("nan"),
    float("inf"),
    float("-inf"),
    nested(MAX_JSON_DEPTH + 1),
    nested(150),
    {"k\x00": 1},
    ["\x07"],
]
hostile_values = json_values | st.sampled_from(KNOWN_HOSTILE)
"""Mostly hostile, sometimes benign: what an attacker, or a broken publisher, sends."""
