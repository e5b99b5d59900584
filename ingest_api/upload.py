"""Streaming upload of a large batch as NDJSON (one item per line), in bounded memory.

Every line is validated as it arrives and written, normalised and with its routing key, to a
spool that moves from memory to a temporary file past a few megabytes. Nothing is published
unless every line is valid, so a bad line at item 900,000 leaves no half-submitted job; the
job is then published from the spool a chunk at a time.
"""

import hashlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from consumers.handlers.base import Handler
from ingest_api.errors import InvalidBatch, TooLarge
from ingest_api.submission import MAX_REPORTED_ERRORS, note_invalid

SPOOL_IN_MEMORY = 8 << 20


class Spool:
    """One line per item: its routing key as a JSON string, a tab, its normalised input as
    JSON (neither can hold a raw tab or newline). Written in blocks."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.count = 0
        self.digest = ""
        self._block: list[bytes] = []

    def add(self, key: str, payload_json: bytes) -> None:
        self._block.append(orjson.dumps(key) + b"\t" + payload_json + b"\n")
        if len(self._block) >= 1000:
            self.flush()

    def flush(self) -> None:
        if self._block:
            self.file.write(b"".join(self._block))
            self._block.clear()

    def close(self) -> None:
        self.file.close()

    def chunks(self, size: int) -> Iterator[list[tuple[bytes, str]]]:
        """The validated items in order, as lists of (normalised input JSON, routing key)."""
        self.flush()
        self.file.seek(0)
        chunk: list[tuple[bytes, str]] = []
        for line in self.file:
            key, _, payload = line.rstrip(b"\n").partition(b"\t")
            chunk.append((payload, orjson.loads(key)))
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


async def spool_ndjson(
    stream: AsyncIterator[bytes],
    handler: Handler,  # type: ignore[type-arg]
    *,
    job_id: UUID,
    max_item_bytes: int,
    max_items: int,
    salt: bytes,
) -> Spool:
    """Read, validate and spool every line; raise InvalidBatch (naming the first bad lines by
    index) or TooLarge. ``salt`` (job type and metadata) goes into the request digest."""
    spool = Spool()
    hasher = hashlib.sha256(salt)
    errors: list[dict[str, Any]] = []
    pending = b""
    index = 0
    try:
        async for chunk in stream:
            hasher.update(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if len(pending) > max_item_bytes:
                raise TooLarge(f"item {index}: a line over {max_item_bytes} bytes")
            for line in lines:
                index = _take(line, index, handler, spool, errors, job_id, max_item_bytes)
                if index > max_items:
                    raise TooLarge(f"more than {max_items} items in one upload")
        index = _take(pending, index, handler, spool, errors, job_id, max_item_bytes)
        if errors:
            raise InvalidBatch(
                f"{len(errors)}+ of {index} items are invalid"
                if len(errors) >= MAX_REPORTED_ERRORS
                else f"{len(errors)} of {index} items are invalid",
                invalid_items=errors,
            )
        if index == 0:
            raise InvalidBatch("the upload holds no items (one JSON object per line)")
    except BaseException:
        spool.close()
        raise
    spool.count = index
    spool.digest = hasher.hexdigest()
    return spool


def _take(
    line: bytes,
    index: int,
    handler: Handler,  # type: ignore[type-arg]
    spool: Spool,
    errors: list[dict[str, Any]],
    job_id: UUID,
    max_item_bytes: int,
) -> int:
    line = line.strip()
    if not line:
        return index
    if len(line) > max_item_bytes:
        raise TooLarge(f"item {index}: {len(line)} bytes exceeds {max_item_bytes}")
    try:
        item = handler.input_model.model_validate_json(line)
    except ValidationError as exc:
        note_invalid(errors, index, exc)
        return index + 1
    if not errors:  # once a line is bad nothing will be published: stop spooling
        key = handler.routing_key(item, job_id=job_id, item_index=index)
        spool.add(key, item.__pydantic_serializer__.to_json(item, exclude_none=True))
    return index + 1
