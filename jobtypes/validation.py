"""How an invalid item is named, the same in the API's 422 and in a worker's ``invalid_input``
outcome: where in the item, then what is wrong."""

from collections.abc import Sequence

from pydantic import ValidationError


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return located_message(first["loc"], first["msg"])


def located_message(loc: Sequence[str | int], message: str) -> str:
    """A validation error's message, prefixed by where in the item it is."""
    return f"{'.'.join(str(p) for p in loc) or 'item'}: {message}"
