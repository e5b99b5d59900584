"""Handlers whose behaviour the tests script through the item's input; loaded by the worker
processes the tests start through ``BATCH_EXTRA_HANDLERS``."""

import asyncio
import os
from collections import Counter

from pydantic import BaseModel, ConfigDict

from jobtypes.contract import Handler, ItemContext, PermanentError, TransientError

EXTRA_HANDLERS = "tests.support.handlers:ScriptedHandler"


class ScriptedInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str
    key: str | None = None
    sleep_ms: float = 0
    transient_failures: int = 0
    permanent_code: str | None = None
    record_to: str | None = None


class ScriptedOutput(BaseModel):
    token: str
    attempt: int


class ScriptedHandler(Handler[ScriptedInput, ScriptedOutput]):
    """Sleeps, fails transiently a number of times, or fails permanently, as told; appends
    ``key token`` to ``record_to`` when it handles an item (to check ordering)."""

    job_type = "scripted"
    input_model = ScriptedInput
    output_model = ScriptedOutput
    timeout_s = 30

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()

    def routing_key(self, item: ScriptedInput, *, job_id, item_index) -> str:  # type: ignore[no-untyped-def]
        return item.key or f"{job_id}:{item_index}"

    async def handle(self, item: ScriptedInput, context: ItemContext) -> ScriptedOutput:
        self.attempts[item.token] += 1
        attempt = self.attempts[item.token]
        if item.sleep_ms:
            await asyncio.sleep(item.sleep_ms / 1000)
        if item.record_to:
            with open(item.record_to, "a") as out:
                out.write(f"{item.key} {item.token} {os.getpid()}\n")
        if item.permanent_code:
            raise PermanentError(item.permanent_code, f"told to fail with {item.permanent_code}")
        if attempt <= item.transient_failures:
            raise TransientError("flaky", f"transient failure {attempt}")
        return ScriptedOutput(token=item.token, attempt=attempt)
