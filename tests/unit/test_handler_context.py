"""Where a handler's call runs (``Handler.handle``): a context of its own for its context
variables; its first step inline in the dispatching task unless ``inline_start`` is off,
the rest in a task of its own that a timeout may cancel safely."""

import asyncio
import contextvars
import uuid
from typing import Any

from pydantic import BaseModel

from consumers.processing import Outcome, RetryPolicy, SubmittedItem, process_item_now
from jobtypes import Handler, ItemContext

seen_by_handler: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


class Input(BaseModel):
    n: int


class Output(BaseModel):
    n: int


class Recording(Handler[Input, Output]):
    job_type = "recording"
    input_model = Input
    output_model = Output
    timeout_s = 5.0

    def __init__(self) -> None:
        self.tasks: dict[int, tuple[Any, Any]] = {}
        self.values: dict[int, tuple[str, str]] = {}

    async def handle(self, item: Input, context: ItemContext) -> Output:
        before_var = seen_by_handler.get()
        seen_by_handler.set(f"item {item.n}")
        before = asyncio.current_task()
        await asyncio.sleep(0.01)  # a real wait
        self.tasks[item.n] = (before, asyncio.current_task())
        self.values[item.n] = (before_var, seen_by_handler.get())
        return Output(n=item.n)


class RecordingInATask(Recording):
    job_type = "recording_in_a_task"
    inline_start = False

    async def handle(self, item: Input, context: ItemContext) -> Output:
        if item.n == 99:  # a timeout entered before the first wait, spanning it
            async with asyncio.timeout(0.01):
                await asyncio.sleep(1)
        return await super().handle(item, context)


def submitted(n: int) -> SubmittedItem:
    job = uuid.uuid4()
    return SubmittedItem(job, str(job), n, {"n": n})


async def run(handler: Handler, n: int) -> Outcome:  # type: ignore[type-arg]
    """What the worker does: the first step here, the rest in a runner task."""
    outcome = process_item_now(handler, submitted(n), RetryPolicy(max_attempts=1))
    if type(outcome) is Outcome:
        return outcome
    return await asyncio.ensure_future(outcome)  # type: ignore[arg-type]


async def test_a_calls_context_variables_are_its_own():
    handler = Recording()
    seen_by_handler.set("the worker's")
    await run(handler, 1)
    await run(handler, 2)
    assert seen_by_handler.get() == "the worker's"  # nothing leaked into the worker
    # each call starts from the worker's value and keeps its own across its wait
    assert handler.values == {1: ("the worker's", "item 1"), 2: ("the worker's", "item 2")}


async def test_the_first_step_runs_inline_the_rest_in_a_runner_task():
    handler = Recording()
    await run(handler, 1)
    before, after = handler.tasks[1]
    assert before is asyncio.current_task()  # the dispatching task
    assert after is not before


async def test_without_inline_start_the_whole_call_runs_in_a_task_a_timeout_may_cancel():
    handler = RecordingInATask()
    await run(handler, 1)
    before, after = handler.tasks[1]
    assert before is after and before is not asyncio.current_task()
    outcome = await run(handler, 99)  # its timeout cancels its own task, not this one
    assert outcome.event_type == "ItemFailed" and b'"error_code":"timeout"' in outcome.value
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
