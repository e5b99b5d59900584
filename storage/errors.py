"""Telling apart a value PostgreSQL refuses from a database that is unavailable."""

import orjson
import psycopg2


def refused_as_data(exc: BaseException) -> bool:
    """An error that one row's value caused, not the database's state: psycopg2 refusing a
    value before sending it (``ValueError``: a NUL in a string, a lone surrogate),
    PostgreSQL refusing one (``DataError``: bad encoding, out of range; ``IntegrityError``:
    a constraint), or the JSON encoder on the way (``orjson.JSONEncodeError``: an integer
    past 64 bits, nesting past its limit). Trying again cannot help; leaving the value out
    can."""
    return isinstance(
        exc, ValueError | psycopg2.DataError | psycopg2.IntegrityError | orjson.JSONEncodeError
    )
