"""Bulk proof locking. (Walking skeleton: validates and echoes; arbitration comes later.)"""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from consumers.handlers.base import Handler
from consumers.handlers.echo import EchoOutput
from consumers.handlers.fields import Base64, ContentHash, DeviceId


class ProofLockInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: DeviceId
    content_hash: ContentHash
    signature: Base64
    captured_at: datetime | None = None


class ProofLockHandler(Handler[ProofLockInput, EchoOutput]):
    job_type = "proof_lock"
    input_model = ProofLockInput
    output_model = EchoOutput

    def routing_key(self, item: ProofLockInput, *, job_id: UUID, item_index: int) -> str:
        return item.content_hash  # locks of one hash are arbitrated in order

    async def handle(self, item: ProofLockInput) -> EchoOutput:
        return EchoOutput(echo=item.model_dump(mode="json", exclude_none=True))
