"""One item through its handler: validation, timeout, retries with backoff, and the outcome.

Nothing a handler does escapes from here: every path ends in exactly one outcome event.
"""

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from pydantic import ValidationError

from consumers.handlers.base import Handler, PermanentError, TransientError
from events.models import ItemFailed, ItemOutcome, ItemSubmitted, ItemSucceeded

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 10.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter before attempt ``attempt + 1``."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "item"
    return f"{where}: {first['msg']}"


async def process_item(
    handler: Handler,
    event: ItemSubmitted,  # type: ignore[type-arg]
    policy: RetryPolicy,
) -> ItemOutcome:
    try:
        item = handler.input_model.model_validate(event.input)
    except ValidationError as exc:
        return ItemFailed.new(
            job_id=event.job_id,
            item_index=event.item_index,
            attempts=0,
            error_code="invalid_input",
            error_message=validation_message(exc),
        )
    spent_ms = 0.0
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(handler.timeout_s):  # runs inline: no extra task
                output = await handler.handle(item)
            spent_ms += (time.perf_counter() - started) * 1000
            return ItemSucceeded.new(
                job_id=event.job_id,
                item_index=event.item_index,
                attempts=attempt,
                duration_ms=spent_ms,
                output=output.model_dump(mode="json"),
            )
        except PermanentError as exc:
            spent_ms += (time.perf_counter() - started) * 1000
            return ItemFailed.new(
                job_id=event.job_id,
                item_index=event.item_index,
                attempts=attempt,
                duration_ms=spent_ms,
                error_code=exc.code,
                error_message=exc.message,
            )
        except Exception as exc:  # transient, timeout, or a bug in the handler: retried
            spent_ms += (time.perf_counter() - started) * 1000
            code, message = _transient(exc, handler.timeout_s)
            if attempt >= policy.max_attempts:
                return ItemFailed.new(
                    job_id=event.job_id,
                    item_index=event.item_index,
                    attempts=attempt,
                    duration_ms=spent_ms,
                    error_code=code,
                    error_message=message,
                )
            log.info(
                "item %s/%s attempt %d failed (%s); retrying",
                event.job_id,
                event.item_index,
                attempt,
                code,
            )
            await asyncio.sleep(policy.delay(attempt))


def _transient(exc: Exception, timeout_s: float) -> tuple[str, str]:
    if isinstance(exc, TransientError):
        return exc.code, exc.message
    if isinstance(exc, TimeoutError):
        return "timeout", f"the handler did not finish within {timeout_s:g}s"
    log.exception("handler raised an unexpected exception", exc_info=exc)
    return "handler_error", f"{type(exc).__name__}: {exc}"[:4096]
