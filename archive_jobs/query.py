"""Bulk proof queries: look a proof up by ``content_hash`` or ``proof_id``, or a device by
``device_id`` (with how many proofs it has locked). Not found is a success, ``found: false``.
"""

from datetime import datetime
from typing import Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, model_validator

from archive_jobs.device_registry import DeviceRow, Lookup, ProofRow, RegistryBacked
from jobtypes.contract import Handler, ItemContext
from jobtypes.fields import ContentHash, DeviceId


class QueryInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    content_hash: ContentHash | None = None
    proof_id: UUID | None = None
    device_id: DeviceId | None = None

    @model_validator(mode="after")
    def exactly_one_key(self) -> Self:
        keys = (
            (self.content_hash is not None)
            + (self.proof_id is not None)
            + (self.device_id is not None)
        )
        if keys != 1:
            raise ValueError("give exactly one of content_hash, proof_id, device_id")
        return self

    def lookup(self) -> Lookup:
        if self.content_hash is not None:
            return Lookup("content_hash", self.content_hash)
        if self.proof_id is not None:
            return Lookup("proof_id", str(self.proof_id))
        return Lookup("device_id", str(self.device_id))


class ProofRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    proof_id: UUID
    content_hash: str
    device_id: str
    captured_at: datetime | None
    locked_at: datetime


class DeviceRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    device_id: str
    key_fingerprint: str
    platform: str | None
    label: str | None
    enrolled_at: datetime
    proofs_count: int


class QueryOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    found: bool
    proof: ProofRecord | None = None
    device: DeviceRecord | None = None


class QueryHandler(RegistryBacked, Handler[QueryInput, QueryOutput]):
    job_type = "query"
    input_model = QueryInput
    output_model = QueryOutput

    async def handle(self, item: QueryInput, context: ItemContext) -> QueryOutput:
        row = await self.registry.look_up(item.lookup())
        if isinstance(row, ProofRow):
            return QueryOutput(
                found=True,
                proof=ProofRecord(
                    proof_id=row.proof_id,
                    content_hash=row.content_hash,
                    device_id=row.device_id,
                    captured_at=row.captured_at,
                    locked_at=row.locked_at,
                ),
            )
        if isinstance(row, DeviceRow):
            return QueryOutput(
                found=True,
                device=DeviceRecord(
                    device_id=row.device_id,
                    key_fingerprint=row.key_fingerprint,
                    platform=row.platform,
                    label=row.label,
                    enrolled_at=row.enrolled_at,
                    proofs_count=row.proofs_count,
                ),
            )
        return QueryOutput(found=False)
