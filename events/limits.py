"""What every value in an event must keep to: the limits of what the tables can hold.

PostgreSQL's ``text`` and ``jsonb`` refuse a NUL character, JSON has no NaN nor infinity
(orjson writes them as ``null``, silently), ``bigint`` and the encoders stop at 64 bits, and
the encoders stop at a nesting depth. A value past these limits in one event must never
reach the tables (where it would stop the projector for every user) nor a handler (where it
would fail a whole batch of other items). So the contract refuses, in every string (keys
too), every number and every JSON object of an event:

- NUL and the other C0 control characters except tab, newline and carriage return, and
  lone surrogates (which no UTF-8 can carry);
- integers outside 64-bit signed (-2**63 .. 2**63-1), and non-finite numbers;
- JSON objects nested deeper than ``MAX_JSON_DEPTH`` (an object alone is depth 1).

Two ways to check, with the same verdict:

- ``value_problem(value)`` walks Python values (what a model or a parser produced);
- a hot path that reads JSON text skips the strings' walk when the text has no backslash:
  valid JSON carries a control character or a surrogate only as an escape
  (``texts_are_clean``), so a walk of the numbers and the depth is enough
  (``value_problem(value, texts=False)``).
"""

import math
import re
from typing import Any

from pydantic import BaseModel

MAX_JSON_DEPTH = 64
MIN_INT, MAX_INT = -(2**63), 2**63 - 1

# C0 controls but tab, newline and carriage return; and surrogates (lone, in a Python str).
FORBIDDEN_CONTROLS = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r")
_FORBIDDEN_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f]*$"
"""The same rule for JSON Schema (which cannot name lone surrogates: JSON text cannot carry
them in UTF-8)."""


class UnsafeValue(ValueError):
    """A value past the limits: ``path`` says where (``a.b[2]``), ``problem`` what."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


def text_problem(text: str) -> str | None:
    """What is wrong with a string, or None."""
    found = _FORBIDDEN_CHARACTER.search(text)
    if found is None:
        return None
    code = ord(found.group())
    if code >= 0xD800:
        return f"a lone surrogate (U+{code:04X}) is not allowed"
    return f"control character U+{code:04X} is not allowed (only tab, newline and return are)"


def safe_text(text: str) -> str:
    """``text`` with each forbidden character replaced by U+FFFD (for messages the service
    writes itself, which may quote anything)."""
    return _FORBIDDEN_CHARACTER.sub("\ufffd", text)


def texts_are_clean(json_text: bytes) -> bool:
    """Whether no string of a valid JSON text can hold a forbidden character: they are
    written only as escapes, and every escape starts with a backslash."""
    return b"\\" not in json_text


def check_object(value: dict[str, Any]) -> dict[str, Any]:
    """``value``, or ``UnsafeValue`` (an ``AfterValidator`` of the contract's JSON objects)."""
    found = value_problem(value)
    if found is not None:
        raise found
    return value


def numbers_within_limits(value: dict[str, Any]) -> bool:
    """Whether a JSON object read from text whose strings are known clean
    (``texts_are_clean``) keeps the limits: its numbers and its depth. (A flat object of
    strings, booleans, nulls and small integers, the common case, in one loop.)"""
    for item in value.values():
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int and MIN_INT <= item <= MAX_INT:
            continue
        return value_problem(value, texts=False) is None
    return True


def value_problem(value: Any, *, texts: bool = True, depth: int = 0) -> UnsafeValue | None:
    """The first problem of ``value`` (JSON-like: dicts, lists, strings, numbers, and pydantic
    models as their fields), or None. ``depth``: how deep ``value`` already is."""
    kind = type(value)
    if kind is dict:
        if depth >= MAX_JSON_DEPTH:
            return UnsafeValue("", f"nested deeper than {MAX_JSON_DEPTH} levels")
        for key, item in value.items():
            item_kind = type(item)
            if texts and type(key) is str and (problem := text_problem(key)) is not None:
                return UnsafeValue(_key_path(key), f"key: {problem}")
            if item_kind is bool or item is None:
                continue
            if item_kind is str and not texts:
                continue
            if item_kind is int and MIN_INT <= item <= MAX_INT:
                continue
            found = value_problem(item, texts=texts, depth=depth + 1)
            if found is not None:
                return _within(_key_path(key), found)
        return None
    if kind is list or kind is tuple:
        if depth >= MAX_JSON_DEPTH:
            return UnsafeValue("", f"nested deeper than {MAX_JSON_DEPTH} levels")
        for index, item in enumerate(value):
            found = value_problem(item, texts=texts, depth=depth + 1)
            if found is not None:
                return _within(f"[{index}]", found)
        return None
    if kind is str:
        problem = text_problem(value) if texts else None
        return None if problem is None else UnsafeValue("", problem)
    if kind is int:
        if MIN_INT <= value <= MAX_INT:
            return None
        return UnsafeValue("", "an integer outside 64 bits (-2**63 .. 2**63-1) is not allowed")
    if kind is float:
        return None if math.isfinite(value) else UnsafeValue("", "NaN and infinity are not allowed")
    if isinstance(value, BaseModel):  # its fields, as the object it is written as
        fields, extra = value.__dict__, value.__pydantic_extra__  # (``dict(model)``: 20x)
        return value_problem({**fields, **extra} if extra else fields, texts=texts, depth=depth)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):  # a subclass (an IntEnum ...) is written as the number
        return value_problem(int(value), texts=texts, depth=depth)
    if isinstance(value, float):
        return value_problem(float(value), texts=texts, depth=depth)
    if isinstance(value, str):
        return value_problem(str(value), texts=texts, depth=depth)
    return None  # bool, None, and what is written as a string (datetime, UUID, ...)


def _key_path(key: object) -> str:
    if type(key) is str and key.isidentifier() and len(key) <= 64:
        return key
    text = repr(key)  # (escapes what a message must not carry)
    return f"[{text[:60]}...]" if len(text) > 64 else f"[{text}]"


def _within(part: str, inner: UnsafeValue) -> UnsafeValue:
    if not inner.path:
        path = part
    elif inner.path.startswith("["):
        path = part + inner.path
    else:
        path = f"{part}.{inner.path}"
    return UnsafeValue(path, inner.problem)
