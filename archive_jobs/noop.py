"""A job type that does nothing, to measure the pipeline itself (benchmarks). Not registered
as an entry point: enable it with ``BATCH_EXTRA_HANDLERS=archive_jobs.noop:NoopHandler``.
"""

from pydantic import BaseModel, ConfigDict

from jobtypes.contract import Handler, ItemContext


class NoopInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int = 0


class NoopOutput(BaseModel):
    n: int


class NoopHandler(Handler[NoopInput, NoopOutput]):
    job_type = "noop"
    input_model = NoopInput
    output_model = NoopOutput

    async def handle(self, item: NoopInput, context: ItemContext) -> NoopOutput:
        return NoopOutput(n=item.n)
