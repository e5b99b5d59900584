"""One item through its handler: validation, timeout, retries with backoff, and the outcome.

Nothing a handler does escapes from here: every path ends in exactly one outcome event,
returned encoded (``events.outcome_wire``: this is the hot path). Everything a handler
supplies is made valid here first: its output is checked against its output model (unless
it is a ``JsonOutput``, which its handler's tests hold to the model), and error codes and
messages are brought within the contract.
"""

import asyncio
import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from pydantic import ValidationError

from consumers.deadlines import Deadlines, current_task
from consumers.handlers.base import (
    Handler,
    ItemContext,
    JsonOutput,
    PermanentError,
    TransientError,
)
from events import outcome_wire
from events.ids import job_id_text
from events.models import ItemSubmitted
from streaming.metrics import JobTypeSeries, series_of

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096
_NOT_CODE = re.compile(r"[^a-z0-9_]+")


class Outcome(NamedTuple):
    """An encoded outcome event and its type (one is made per item)."""

    event_type: str
    value: bytes


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter before attempt ``attempt + 1``."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def error_code(code: object) -> str:
    """A handler's error code brought within the contract: ``^[a-z][a-z0-9_]*$``, <= 64."""
    text = _NOT_CODE.sub("_", str(code).lower()).strip("_")[:64]
    if not text or not text[0].isalpha():
        text = ("e_" + text)[:64] if text else "handler_error"
    return text


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    return located_message(first["loc"], first["msg"])


def located_message(loc: Sequence[str | int], message: str) -> str:
    """A validation error's message, prefixed by where in the item it is."""
    return f"{'.'.join(str(p) for p in loc) or 'item'}: {message}"


def failed(
    job_id: str, item_index: int, code: str, message: str, attempts: int, duration_ms: float = 0.0
) -> Outcome:
    """An ``ItemFailed`` outcome; ``job_id`` is the job id's text."""
    return Outcome(
        "ItemFailed",
        outcome_wire.failed(
            job_id,
            item_index,
            attempts=attempts,
            duration_ms=duration_ms,
            error_code=error_code(code),
            error_message=str(message)[:MAX_MESSAGE],
        ),
    )


def cancelled(job_id: str, item_index: int) -> Outcome:
    return Outcome("ItemCancelled", outcome_wire.cancelled(job_id, item_index))


def _output(handler: Handler, output: Any) -> dict[str, Any] | bytes:  # type: ignore[type-arg]
    """The handler's output for the outcome: a ``JsonOutput`` as it is, anything else as its
    output model writes it (validated first unless it is one)."""
    if type(output) is JsonOutput:
        return output
    model = handler.output_model
    if not isinstance(output, model):
        output = model.model_validate(output)
    return output.__pydantic_serializer__.to_json(output)  # type: ignore[no-any-return]


class SubmittedItem(NamedTuple):
    """An item to process, as read from its ``ItemSubmitted`` event."""

    job_id: UUID
    job_text: str  # str(job_id)
    item_index: int
    item: Any  # the handler's input model; the raw input when it did not validate as one

    @classmethod
    def of(cls, event: ItemSubmitted) -> "SubmittedItem":
        return cls(event.job_id, job_id_text(event.job_id), event.item_index, event.input)


async def process_item(
    handler: Handler,  # type: ignore[type-arg]
    submitted: SubmittedItem,
    policy: RetryPolicy,
    deadlines: Deadlines | None = None,
    series: JobTypeSeries | None = None,
) -> Outcome:
    """``series``: the job type's metrics (``series_of(handler.job_type)``), when the caller
    has them at hand."""
    job_id, job, index, item = submitted
    series = series or series_of(handler.job_type)
    if not isinstance(item, handler.input_model):  # not validated when read (ItemReader)
        try:
            item = handler.input_model.model_validate(item)
        except ValidationError as exc:
            return failed(job, index, "invalid_input", validation_message(exc), attempts=0)
    timeout_s = handler.timeout_s
    spent_ms = 0.0
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        try:
            context = ItemContext(job_id, index, attempt)
            if deadlines is None:
                async with asyncio.timeout(timeout_s):
                    result = await handler.handle(item, context)
            else:  # one watchdog for every runner instead of a timer per call
                task = current_task()
                deadlines.arm(task, timeout_s)
                try:
                    result = await handler.handle(item, context)
                except asyncio.CancelledError:
                    if deadlines.disarm(task):
                        raise TimeoutError from None
                    raise
                except BaseException:
                    deadlines.disarm(task)  # else the idle runner is cancelled later
                    raise
                deadlines.disarm(task)  # a deadline that expired as it returned: it stands
            output = _output(handler, result)
            spent_ms += (time.perf_counter() - started) * 1000
            series.handler_seconds.observe(spent_ms / 1000)
            return Outcome(
                "ItemSucceeded",
                outcome_wire.succeeded(
                    job, index, attempts=attempt, duration_ms=spent_ms, output=output
                ),
            )
        except PermanentError as exc:
            spent_ms += (time.perf_counter() - started) * 1000
            series.handler_seconds.observe(spent_ms / 1000)
            return failed(job, index, exc.code, exc.message, attempt, spent_ms)
        except Exception as exc:  # transient, timeout, bad output or a bug: retried
            spent_ms += (time.perf_counter() - started) * 1000
            code, message = _transient(exc, timeout_s)
            if attempt >= policy.max_attempts:
                series.handler_seconds.observe(spent_ms / 1000)
                return failed(job, index, code, message, attempt, spent_ms)
            series.retries.inc()
            log.info(
                "item %s/%s attempt %d failed (%s); retrying",
                job,
                index,
                attempt,
                code,
                extra={"job_id": job, "item_index": index, "error_code": code},
            )
            await asyncio.sleep(policy.delay(attempt))


def _transient(exc: Exception, timeout_s: float) -> tuple[str, str]:
    if isinstance(exc, TransientError):
        return exc.code, exc.message
    if isinstance(exc, TimeoutError):
        return "timeout", f"the handler did not finish within {timeout_s:g}s"
    if isinstance(exc, ValidationError):
        return "invalid_output", validation_message(exc)
    log.exception("handler raised an unexpected exception", exc_info=exc)
    return "handler_error", f"{type(exc).__name__}: {exc}"
