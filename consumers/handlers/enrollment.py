"""Bulk device enrollment. (Walking skeleton: validates and echoes; the registry comes later.)"""

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from consumers.handlers.base import Handler
from consumers.handlers.echo import EchoOutput
from consumers.handlers.fields import Base64, DeviceId


class EnrollmentInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: DeviceId
    public_key: Base64
    platform: str | None = Field(None, max_length=64)
    label: str | None = Field(None, max_length=256)


class EnrollmentHandler(Handler[EnrollmentInput, EchoOutput]):
    job_type = "enrollment"
    input_model = EnrollmentInput
    output_model = EchoOutput

    def routing_key(self, item: EnrollmentInput, *, job_id: UUID, item_index: int) -> str:
        return item.device_id  # one device's enrollments are decided in order

    async def handle(self, item: EnrollmentInput) -> EchoOutput:
        return EchoOutput(echo=item.model_dump(mode="json", exclude_none=True))
