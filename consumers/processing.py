"""One item through its handler: validation, timeout, retries with backoff, and the outcome
(what fails an item and how: ``consumers.failures``).

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
from collections.abc import Awaitable, Coroutine, Generator
from contextvars import Context, copy_context
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from pydantic import ValidationError

from consumers.deadlines import Deadlines, current_task
from consumers.failures import retried_error
from consumers.metrics import JobTypeSeries, series_of
from consumers.outage import Outage
from events import outcome_wire
from events.ids import job_id_text
from events.limits import (
    UnsafeValue,
    numbers_within_limits,
    safe_text,
    texts_are_clean,
    value_problem,
)
from events.models import ItemSubmitted
from jobtypes.contract import (
    DependencyUnavailable,
    Handler,
    ItemContext,
    JsonOutput,
    PermanentError,
)
from jobtypes.validation import validation_message

# A NamedTuple's tuple made without its Python-level ``__new__`` (once per item).
new_tuple = tuple.__new__

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
            error_message=safe_text(str(message)[:MAX_MESSAGE]),
        ),
    )


def cancelled(job_id: str, item_index: int) -> Outcome:
    return Outcome("ItemCancelled", outcome_wire.cancelled(job_id, item_index))


def _output(handler: Handler, output: Any) -> dict[str, Any] | bytes:
    """The handler's output for the outcome: a ``JsonOutput`` as it is, anything else as its
    output model writes it (validated first unless it is one); either held to the
    contract's limits (``events.limits``: ``UnsafeValue`` if not)."""
    if type(output) is JsonOutput:
        _within_limits(output, texts=True)
        return output
    model = handler.output_model
    if not isinstance(output, model):
        output = model.model_validate(output)
    written: bytes = output.__pydantic_serializer__.to_json(output)
    if (  # the common case, cheap
        texts_are_clean(written)
        and not output.__pydantic_extra__
        and numbers_within_limits(output.__dict__)
    ):
        return written
    _within_limits(output, texts=True)
    return written


def _within_limits(output: Any, *, texts: bool) -> None:
    found = value_problem(output, texts=texts)
    if found is not None:
        raise UnsafeValue(f"output.{found.path}" if found.path else "output", found.problem)


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
    handler: Handler,
    submitted: SubmittedItem,
    policy: RetryPolicy,
    deadlines: Deadlines | None = None,
    series: JobTypeSeries | None = None,
    outage: Outage | None = None,
) -> Outcome:
    """The item's outcome, after as many attempts as it takes. ``series``: the job type's
    metrics (``series_of(handler.job_type)``), when the caller has them at hand; ``outage``:
    where waiting for an unavailable dependency is told (``consumers.outage``)."""
    outcome = process_item_now(handler, submitted, policy, deadlines, series, outage)
    if type(outcome) is Outcome:
        return outcome
    return await outcome  # type: ignore[misc]


def process_item_now(
    handler: Handler,
    submitted: SubmittedItem,
    policy: RetryPolicy,
    deadlines: Deadlines | None = None,
    series: JobTypeSeries | None = None,
    outage: Outage | None = None,
) -> "Outcome | Coroutine[Any, Any, Outcome]":
    """``process_item`` as far as it goes without waiting: the outcome when the first
    attempt ends without the handler waiting on anything (a no-op or a pure computation:
    no task, timer or deadline is needed), else a coroutine that finishes the first
    attempt, within the handler's timeout, and makes any others."""
    job_id, job, index, item = submitted
    series = series or series_of(handler.job_type)
    if not isinstance(item, handler.input_model):  # not validated when read (ItemReader)
        try:
            item = handler.input_model.model_validate(item)
        except ValidationError as exc:
            return failed(job, index, "invalid_input", validation_message(exc), attempts=0)
    started = time.perf_counter()
    try:
        call = handler.handle(item, new_tuple(ItemContext, (job_id, index, 1)))
        context = copy_context()  # its own: see ``Handler.handle``
        if not handler.inline_start:
            rest = _Attempts(handler, job_id, job, index, item, policy, deadlines, series, outage)
            return rest.resume(_InContext(call, context), started)
        waiting_on = context.run(call.send, None)
    except StopIteration as done:
        try:
            return _succeeded(handler, series, job, index, 1, done.value, started, 0.0)
        except Exception as exc:  # its output breaks the output model: retried
            error = exc
    except PermanentError as exc:
        return _permanent(series, job, index, exc, 1, started, 0.0)
    except Exception as exc:  # transient, or a bug: retried
        error = exc
    else:  # the handler waits: the rest runs in a task, under the timeout
        rest = _Attempts(handler, job_id, job, index, item, policy, deadlines, series, outage)
        return rest.resume(_InContext(call, context, waiting_on), started)
    rest = _Attempts(handler, job_id, job, index, item, policy, deadlines, series, outage)
    return rest.retry(error, (time.perf_counter() - started) * 1000)


def _succeeded(
    handler: Handler,
    series: JobTypeSeries,
    job: str,
    index: int,
    attempt: int,
    result: Any,
    started: float,
    spent_ms: float,
) -> Outcome:
    """Raises ``ValidationError`` when the output breaks the output model."""
    output = _output(handler, result)
    spent_ms += (time.perf_counter() - started) * 1000
    series.handler_seconds.observe(spent_ms / 1000)
    value = outcome_wire.succeeded(
        job, index, attempts=attempt, duration_ms=spent_ms, output=output
    )
    return new_tuple(Outcome, ("ItemSucceeded", value))


def _permanent(
    series: JobTypeSeries,
    job: str,
    index: int,
    exc: PermanentError,
    attempt: int,
    started: float,
    spent_ms: float,
) -> Outcome:
    spent_ms += (time.perf_counter() - started) * 1000
    series.handler_seconds.observe(spent_ms / 1000)
    return failed(job, index, exc.code, exc.message, attempt, spent_ms)


class _Attempts:
    """The attempts at one item after a first one that waited or failed
    (``process_item_now``)."""

    __slots__ = (
        "deadlines",
        "handler",
        "index",
        "item",
        "job",
        "job_id",
        "outage",
        "policy",
        "series",
    )

    def __init__(
        self,
        handler: Handler,
        job_id: UUID,
        job: str,
        index: int,
        item: Any,
        policy: RetryPolicy,
        deadlines: Deadlines | None,
        series: JobTypeSeries,
        outage: Outage | None = None,
    ):
        self.handler, self.job_id, self.job, self.index = handler, job_id, job, index
        self.item, self.policy, self.deadlines, self.series = item, policy, deadlines, series
        self.outage = outage

    async def resume(self, call: "_InContext", started: float) -> Outcome:
        """Finish a first attempt that is waiting, then make any others."""
        remaining_s = self.handler.timeout_s - (time.perf_counter() - started)
        try:
            result = await self._timed(call, remaining_s)
            return _succeeded(
                self.handler, self.series, self.job, self.index, 1, result, started, 0.0
            )
        except PermanentError as exc:
            return _permanent(self.series, self.job, self.index, exc, 1, started, 0.0)
        except Exception as exc:  # transient, timeout, bad output or a bug: retried
            return await self.retry(exc, (time.perf_counter() - started) * 1000)

    async def retry(self, error: Exception, spent_ms: float, attempt: int = 1) -> Outcome:
        """Attempts after attempt ``attempt``, which failed with ``error``. An attempt that
        found a dependency unavailable does not count: the item waits for it (capped
        backoff with jitter, the worker told through ``outage``) and tries again."""
        handler, timeout_s = self.handler, self.handler.timeout_s
        job, index = self.job, self.index
        waiting_for: str | None = None  # the dependency this item waits for
        outage_tries = 0
        try:
            while True:
                if isinstance(error, DependencyUnavailable):
                    if waiting_for is None:
                        waiting_for = error.dependency
                        self._met(error, attempt)
                    await asyncio.sleep(Outage.delay(outage_tries))
                    outage_tries += 1
                else:
                    if waiting_for is not None:
                        self._over(waiting_for)
                        waiting_for, outage_tries = None, 0
                    code, message = retried_error(error, timeout_s)
                    if attempt >= self.policy.max_attempts:
                        self.series.handler_seconds.observe(spent_ms / 1000)
                        return failed(job, index, code, message, attempt, spent_ms)
                    self.series.retries.inc()
                    log.info(
                        "item %s/%s attempt %d failed (%s); retrying",
                        job,
                        index,
                        attempt,
                        code,
                        extra={"job_id": job, "item_index": index, "error_code": code},
                    )
                    await asyncio.sleep(self.policy.delay(attempt))
                    attempt += 1
                started = time.perf_counter()
                try:
                    context = ItemContext(self.job_id, index, attempt)
                    call = _InContext(handler.handle(self.item, context), copy_context())
                    result = await self._timed(call, timeout_s)
                    return _succeeded(
                        handler, self.series, job, index, attempt, result, started, spent_ms
                    )
                except PermanentError as exc:
                    return _permanent(self.series, job, index, exc, attempt, started, spent_ms)
                except Exception as exc:  # transient, timeout, bad output, unavailable, a bug
                    error = exc
                    spent_ms += (time.perf_counter() - started) * 1000
        finally:
            if waiting_for is not None:
                self._over(waiting_for)

    def _met(self, error: DependencyUnavailable, attempt: int) -> None:
        log.debug(  # (the worker says it once, as it pauses)
            "item %s/%s waits for %s (attempt %d not spent): %s",
            self.job,
            self.index,
            error.dependency,
            attempt,
            error.message,
            extra={"job_id": self.job, "item_index": self.index},
        )
        if self.outage is not None:
            self.outage.met(error.dependency)

    def _over(self, dependency: str) -> None:
        if self.outage is not None:
            self.outage.over(dependency)

    async def _timed(self, call: Awaitable[Any], timeout_s: float) -> Any:
        deadlines = self.deadlines
        if deadlines is None:
            async with asyncio.timeout(timeout_s):
                return await call
        task = current_task()  # one watchdog for every task instead of a timer per call
        deadlines.arm(task, timeout_s)
        try:
            result = await call
        except asyncio.CancelledError:
            if deadlines.disarm(task):
                raise TimeoutError from None
            raise
        except BaseException:
            deadlines.disarm(task)  # else the idle task is cancelled later
            raise
        deadlines.disarm(task)  # a deadline that expired as it returned: it stands
        return result


_NOT_STARTED = object()


class _InContext:
    """Awaits a handler's coroutine with each of its steps run in ``context`` (its own
    context variables), from where it is: not started, or waiting on ``waiting_on`` (what
    its first step yielded, run by ``process_item_now``)."""

    __slots__ = ("_context", "_coro", "_waiting_on")

    def __init__(
        self, coro: Coroutine[Any, Any, Any], context: Context, waiting_on: Any = _NOT_STARTED
    ):
        self._coro, self._context, self._waiting_on = coro, context, waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, run, waiting_on = self._coro, self._context.run, self._waiting_on
        if waiting_on is _NOT_STARTED:
            try:
                waiting_on = run(coro.send, None)
            except StopIteration as done:
                return done.value
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:  # thrown into the task (a cancellation): pass it on
                try:
                    waiting_on = run(coro.throw, exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting_on = run(coro.send, sent)
                except StopIteration as done:
                    return done.value
