"""Bulk proof queries. (Walking skeleton: validates and echoes; lookups come later.)"""

from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator

from consumers.handlers.base import Handler
from consumers.handlers.echo import EchoOutput
from consumers.handlers.fields import ContentHash, DeviceId


class QueryInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    content_hash: ContentHash | None = None
    proof_id: str | None = None
    device_id: DeviceId | None = None

    @model_validator(mode="after")
    def exactly_one_key(self) -> Self:
        given = [v for v in (self.content_hash, self.proof_id, self.device_id) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of content_hash, proof_id, device_id")
        return self


class QueryHandler(Handler[QueryInput, EchoOutput]):
    job_type = "query"
    input_model = QueryInput
    output_model = EchoOutput

    async def handle(self, item: QueryInput) -> EchoOutput:
        return EchoOutput(echo=item.model_dump(mode="json", exclude_none=True))
