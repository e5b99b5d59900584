"""process_item with fake handlers: retries, permanent failures, timeouts, bad input."""

import asyncio
from uuid import uuid4

import pytest
from pydantic import BaseModel

from consumers.deadlines import Deadlines, bind_runner_task
from consumers.outage import Outage
from consumers.processing import Outcome, RetryPolicy, SubmittedItem, error_code, process_item_now
from consumers.processing import process_item as process_to_bytes
from events.codec import decode
from events.models import ItemFailed, ItemSubmitted, ItemSucceeded
from jobtypes.contract import (
    DependencyUnavailable,
    Handler,
    ItemContext,
    PermanentError,
    TransientError,
)


async def process_item(handler, event, policy, deadlines=None):
    """The outcome, decoded through the one codec: it must be a valid contract event."""
    outcome = await process_to_bytes(handler, SubmittedItem.of(event), policy, deadlines)
    decoded = decode(outcome.value)
    assert decoded.event_type == outcome.event_type
    assert decoded.job_id == event.job_id and decoded.item_index == event.item_index
    return decoded


FAST = RetryPolicy(max_attempts=3, backoff_base_s=0.001, backoff_max_s=0.002)


class In(BaseModel):
    n: int


class Out(BaseModel):
    doubled: int


class Scripted(Handler[In, Out]):
    """Raises the scripted exceptions in turn, then succeeds."""

    job_type = "scripted"
    input_model = In
    output_model = Out
    timeout_s = 0.2

    def __init__(self, *script: BaseException | float):
        self.script = list(script)
        self.calls = 0

    async def handle(self, item: In, context: ItemContext) -> Out:
        self.calls += 1
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, BaseException):
                raise step
            await asyncio.sleep(step)
        return Out(doubled=item.n * 2)


def submitted(payload=None) -> ItemSubmitted:
    return ItemSubmitted.new(
        job_id=uuid4(),
        item_index=4,
        job_type="scripted",
        input=payload if payload is not None else {"n": 21},
    )


async def test_success_carries_output_attempts_and_duration():
    outcome = await process_item(Scripted(0.01), submitted(), FAST)
    assert isinstance(outcome, ItemSucceeded)
    assert outcome.output == {"doubled": 42}
    assert outcome.attempts == 1
    assert outcome.duration_ms >= 10
    assert outcome.item_index == 4


async def test_transient_twice_then_success_takes_three_attempts():
    handler = Scripted(TransientError("busy", "try later"), TransientError("busy", "again"))
    outcome = await process_item(handler, submitted(), FAST)
    assert isinstance(outcome, ItemSucceeded)
    assert (outcome.attempts, handler.calls) == (3, 3)


async def test_permanent_error_fails_at_once_with_its_code():
    handler = Scripted(PermanentError("invalid_signature", "does not verify"))
    outcome = await process_item(handler, submitted(), FAST)
    assert isinstance(outcome, ItemFailed)
    assert (outcome.error_code, outcome.error_message) == ("invalid_signature", "does not verify")
    assert (outcome.attempts, handler.calls) == (1, 1)


async def test_attempts_run_out_with_the_last_error():
    handler = Scripted(*(TransientError("busy", f"try {i}") for i in range(5)))
    outcome = await process_item(handler, submitted(), FAST)
    assert isinstance(outcome, ItemFailed)
    assert (outcome.error_code, outcome.error_message, outcome.attempts) == ("busy", "try 2", 3)


async def test_an_unexpected_exception_is_retried_like_a_transient_one():
    handler = Scripted(ZeroDivisionError("oops"))
    outcome = await process_item(handler, submitted(), FAST)
    assert isinstance(outcome, ItemSucceeded) and outcome.attempts == 2


@pytest.mark.parametrize("watched", [False, True], ids=["asyncio.timeout", "Deadlines"])
async def test_a_slow_handler_times_out_and_is_retried(watched):
    handler = Scripted(5.0, 5.0, 5.0)
    deadlines = Deadlines(interval_s=0.01) if watched else None

    async def runner():
        bind_runner_task()
        return await process_item(handler, submitted(), FAST, deadlines)

    if deadlines is not None:
        deadlines.start()
    try:
        outcome = await asyncio.wait_for(asyncio.create_task(runner()), 5)
    finally:
        if deadlines is not None:
            await deadlines.stop()
    assert isinstance(outcome, ItemFailed)
    assert outcome.error_code == "timeout" and outcome.attempts == 3


@pytest.mark.parametrize("payload", [{"n": "many"}, {}, {"n": 1, "extra": True}])
async def test_invalid_input_fails_without_calling_the_handler(payload):
    class Strict(In):
        model_config = {"extra": "forbid"}

    handler = Scripted()
    handler.input_model = Strict  # type: ignore[misc]
    outcome = await process_item(handler, submitted(payload), FAST)
    assert isinstance(outcome, ItemFailed)
    assert outcome.error_code == "invalid_input" and handler.calls == 0


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(max_attempts=10, backoff_base_s=1, backoff_max_s=4)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (8, 4)]:
        delays = [policy.delay(attempt) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= ceiling


async def test_a_handler_error_code_outside_the_contract_is_made_valid():
    handler = Scripted(PermanentError("Bad Code!", "x" * 10_000))
    outcome = await process_item(handler, submitted(), FAST)
    assert isinstance(outcome, ItemFailed)
    assert outcome.error_code == "bad_code"
    assert len(outcome.error_message) == 4096


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("already_locked", "already_locked"),
        ("HTTP 503", "http_503"),
        ("42", "e_42"),
        ("", "handler_error"),
        ("!!!", "handler_error"),
        ("a" * 100, "a" * 64),
    ],
)
def test_error_codes_are_brought_within_the_contract(raw, code):
    assert error_code(raw) == code


async def test_output_that_breaks_the_output_model_fails_the_item():
    class Liar(Scripted):
        async def handle(self, item, context):
            return {"doubled": "not a number"}

    outcome = await process_item(Liar(), submitted(), FAST)
    assert isinstance(outcome, ItemFailed)
    assert outcome.error_code == "invalid_output" and outcome.attempts == 3


@pytest.mark.parametrize("error", [PermanentError("no", "never"), TransientError("later", "x")])
async def test_a_handler_that_raises_leaves_no_deadline_armed(error):
    """The runner task that called a failing handler goes on idling, then handling more
    items, long past the failed call's deadline: nothing cancels it."""
    deadlines = Deadlines(interval_s=0.01)
    deadlines.start()
    handler = Scripted(error)
    handler.timeout_s = 0.05  # type: ignore[misc]
    once = RetryPolicy(max_attempts=1)

    async def runner() -> list[str]:
        bind_runner_task()
        first = await process_item(handler, submitted(), once, deadlines)
        await asyncio.sleep(0.3)  # idle, as a runner waiting for records
        second = await process_item(handler, submitted(), once, deadlines)
        return [first.event_type, second.event_type]

    try:
        assert await asyncio.wait_for(runner(), 5) == ["ItemFailed", "ItemSucceeded"]
    finally:
        await deadlines.stop()


async def test_an_attempt_that_never_waits_gives_its_outcome_at_once():
    handler = Scripted(TransientError("later", "x"))
    event = submitted()
    first = process_item_now(handler, SubmittedItem.of(event), FAST)
    assert not isinstance(first, Outcome)  # failed at once, but retried: a coroutine
    assert isinstance(decode((await first).value), ItemSucceeded)
    now = process_item_now(handler, SubmittedItem.of(event), FAST)
    assert isinstance(now, Outcome) and now.event_type == "ItemSucceeded"
    decoded = decode(now.value)
    assert isinstance(decoded, ItemSucceeded) and decoded.attempts == 1
    assert decoded.output == {"doubled": 42} and handler.calls == 3


@pytest.mark.parametrize("watched", [False, True], ids=["asyncio.timeout", "Deadlines"])
async def test_a_first_attempt_that_waits_is_finished_in_another_task_within_its_timeout(
    watched,
):
    """As in a worker: the first attempt starts in the fetch loop; when the handler waits,
    a runner task finishes it, under the timeout that began with the call."""
    deadlines = Deadlines(interval_s=0.01) if watched else None
    if deadlines is not None:
        deadlines.start()
    try:
        slow = Scripted(5.0, 0.01)  # times out once, then succeeds
        rest = process_item_now(slow, SubmittedItem.of(submitted()), FAST, deadlines)
        assert not isinstance(rest, Outcome)

        async def runner():
            bind_runner_task()
            return await rest

        started = asyncio.get_running_loop().time()
        outcome = decode((await asyncio.wait_for(asyncio.create_task(runner()), 5)).value)
        assert isinstance(outcome, ItemSucceeded) and outcome.attempts == 2
        assert asyncio.get_running_loop().time() - started < 1  # 0.2 s timeout, not 5 s
        assert outcome.duration_ms >= 200  # both attempts are counted

        quick = Scripted(0.01)  # waits, within its timeout
        rest = process_item_now(quick, SubmittedItem.of(submitted()), FAST, deadlines)
        assert not isinstance(rest, Outcome)
        outcome = decode((await asyncio.create_task(runner())).value)
        assert isinstance(outcome, ItemSucceeded) and outcome.attempts == 1
    finally:
        if deadlines is not None:
            await deadlines.stop()


async def test_an_unavailable_dependency_spends_no_attempt_and_the_worker_is_told(monkeypatch):
    """A database restarting for longer than all the retries' backoff: the item waits for
    it (the worker pausing meanwhile), and succeeds on its first counted attempt."""
    monkeypatch.setattr(Outage, "delay", staticmethod(lambda tries: 0.005))
    down = DependencyUnavailable("postgresql", "the database system is starting up")
    handler = Scripted(*([down] * 8))  # more than max_attempts
    outage = Outage("scripted")
    seen: list[list[str]] = []

    async def watch() -> None:
        while True:
            seen.append(outage.down)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    outcome = await process_to_bytes(handler, SubmittedItem.of(submitted()), FAST, outage=outage)
    watcher.cancel()
    event = decode(outcome.value)
    assert isinstance(event, ItemSucceeded) and event.attempts == 1
    assert handler.calls == 9
    assert ["postgresql"] in seen and outage.down == []  # told, then over


async def test_only_the_other_failures_count_as_attempts(monkeypatch):
    monkeypatch.setattr(Outage, "delay", staticmethod(lambda tries: 0.001))
    down = DependencyUnavailable("postgresql", "restarting")
    flaky = TransientError("flaky", "try again")
    handler = Scripted(down, flaky, down, down, flaky, down, flaky)  # 3 real failures
    event = await process_item(handler, submitted(), FAST)
    assert isinstance(event, ItemFailed) and event.attempts == 3
    assert event.error_code == "flaky"
    handler = Scripted(down, flaky, down, flaky, down)
    outage = Outage("scripted")
    event = decode(
        (await process_to_bytes(handler, SubmittedItem.of(submitted()), FAST, outage=outage)).value
    )
    assert isinstance(event, ItemSucceeded) and event.attempts == 3
    assert outage.down == []
