"""Streaming upload of a large batch as NDJSON (one item per line), in bounded memory.

Every line is validated as it arrives and written, normalised and with its routing key, to a
spool that moves from memory to a temporary file past a few megabytes. Nothing is published
unless every line is valid, so a bad line at item 900,000 leaves no half-submitted job; the
job is then published from the spool a chunk at a time.

An upload is bounded in every way a client can stretch it: bytes in all, lines (blank ones
too), bytes a line, time between two pieces of the body and time in all.
"""

import asyncio
import hashlib
import itertools
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from ingest_api.errors import InvalidBatch, TooLarge, UploadTimedOut
from ingest_api.submission import (
    SpooledChunk,
    invalid_items,
    item_payloads,
    note_invalid,
    spooled_chunk,
)
from jobtypes.contract import Handler

SPOOL_IN_MEMORY = 8 << 20


class Spool:
    """One line per item: its normalised input as compact JSON (which holds no raw tab or
    newline), and, for a job type whose routing keys depend on the item, a tab and its key as
    a JSON string. Written a chunk of items at a time."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
        self.count = 0
        self.digest = ""
        self.keyed = False

    def add(self, chunk: SpooledChunk) -> None:
        payloads, keys = chunk
        if keys is None:
            self.file.write(b"\n".join(payloads) + b"\n")
        else:
            self.keyed = True
            self.file.write(
                b"".join(
                    b"%s\t%s\n" % (payload, orjson.dumps(key))
                    for payload, key in zip(payloads, keys, strict=True)
                )
            )

    def close(self) -> None:
        self.file.close()

    def chunks(self, size: int) -> Iterator[SpooledChunk]:
        """The validated items in order, ``size`` at a time."""
        self.file.seek(0)
        while lines := list(itertools.islice(self.file, size)):
            if not self.keyed:
                yield [line[:-1] for line in lines], None
                continue
            split = [line[:-1].partition(b"\t") for line in lines]
            yield [payload for payload, _, _ in split], [orjson.loads(key) for _, _, key in split]


@dataclass(frozen=True)
class UploadLimits:
    max_item_bytes: int
    max_items: int  # lines, blank ones included
    max_bytes: int
    idle_timeout_s: float  # between two pieces of the body
    timeout_s: float  # the whole upload


async def spool_ndjson(
    stream: AsyncIterator[bytes],
    handler: Handler,
    *,
    job_id: UUID,
    limits: UploadLimits,
    salt: bytes,
) -> Spool:
    """Read, validate and spool every line; raise InvalidBatch (naming the first bad items by
    index and line), TooLarge or UploadTimedOut. ``salt`` (job type and metadata) goes into
    the request digest. Lines are split in time linear in the upload's size, however it is cut."""
    spool = Spool()
    hasher = hashlib.sha256(salt)
    errors: list[dict[str, Any]] = []
    pending = bytearray()
    scanned = 0  # how much of ``pending`` is known to hold no newline
    index = lines_seen = received = 0
    deadline = time.monotonic() + limits.timeout_s
    pieces = aiter(stream)
    try:
        while True:
            chunk = await _next_piece(pieces, limits, deadline)
            if chunk is None:
                break
            received += len(chunk)
            if received > limits.max_bytes:
                raise TooLarge(f"the upload exceeds the limit of {limits.max_bytes} bytes")
            hasher.update(chunk)
            pending += chunk
            end = pending.rfind(b"\n", scanned)
            if end < 0:
                scanned = len(pending)
                if scanned > limits.max_item_bytes:
                    raise TooLarge(f"item {index}: a line over {limits.max_item_bytes} bytes")
                continue
            lines = pending[:end].split(b"\n")
            del pending[: end + 1]
            scanned = 0
            first_line = lines_seen + 1
            lines_seen += len(lines)
            if lines_seen > limits.max_items:
                raise TooLarge(f"more than {limits.max_items} lines in one upload")
            index = _take(
                lines, first_line, index, handler, spool, errors, job_id, limits.max_item_bytes
            )
            if len(pending) > limits.max_item_bytes:
                raise TooLarge(f"item {index}: a line over {limits.max_item_bytes} bytes")
        index = _take(
            [pending], lines_seen + 1, index, handler, spool, errors, job_id, limits.max_item_bytes
        )
        if errors:
            raise invalid_items(errors, index)
        if index == 0:
            raise InvalidBatch("the upload holds no items (one JSON object per line)")
    except BaseException:
        spool.close()
        raise
    spool.count = index
    spool.digest = hasher.hexdigest()
    return spool


async def _next_piece(
    pieces: AsyncIterator[bytes], limits: UploadLimits, deadline: float
) -> bytes | None:
    """The body's next piece, or None at its end; ``UploadTimedOut`` when it is slower
    than the limits allow."""
    wait_s = min(limits.idle_timeout_s, deadline - time.monotonic())
    try:
        async with asyncio.timeout(max(0.0, wait_s)):
            return await anext(pieces)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        if time.monotonic() >= deadline:
            raise UploadTimedOut(
                f"the upload took longer than the limit of {limits.timeout_s:g}s"
            ) from None
        raise UploadTimedOut(
            f"no data for {limits.idle_timeout_s:g}s: the upload was abandoned"
        ) from None


def _take(
    lines: Sequence[bytearray | bytes],
    first_line: int,
    index: int,
    handler: Handler,
    spool: Spool,
    errors: list[dict[str, Any]],
    job_id: UUID,
    max_item_bytes: int,
) -> int:
    """Validate the lines (numbered from ``first_line``; blank ones skipped) of items
    numbered from ``index`` and spool them; return the next index."""
    validate = handler.input_model.__pydantic_validator__.validate_json
    start, items, line_of = index, [], []
    for number, raw in enumerate(lines, first_line):
        line = raw.strip()
        if not line:
            continue
        line_of.append(number)
        if len(line) > max_item_bytes:
            raise TooLarge(
                f"item {index} (line {number}): {len(line)} bytes exceeds {max_item_bytes}"
            )
        try:
            items.append(validate(line))
        except ValidationError as exc:
            note_invalid(errors, index, exc, line=number)
        index += 1
    if items and not errors:  # once a line is bad nothing will be published: stop spooling
        payloads = item_payloads(
            handler, items, start=start, max_item_bytes=max_item_bytes, errors=errors
        )
        if not errors:
            spool.add(spooled_chunk(handler, job_id, start, items, payloads))
        for error in errors:  # past the contract's limits: named by line too
            error.setdefault("line", line_of[error["item_index"] - start])
    return index
