"""Bulk proof locking: a device-signed SHA-256 hash becomes an immutable, timestamped record.

- Device not enrolled → ``device_not_enrolled``.
- Signature (Ed25519, by the device's key, over the raw 32 hash bytes) does not verify →
  ``invalid_signature``.
- A new hash → locked (``already_locked: false``).
- Locked before by the same device → success, ``already_locked: true``, with the first
  lock's ``proof_id`` and ``locked_at``.
- Locked before by another device → ``already_locked``.
"""

import base64
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from archive_jobs.device_registry import RegistryBacked
from events.ids import ItemUuid5, job_id_text
from jobtypes.contract import Handler, ItemContext, JsonOutput, PermanentError
from jobtypes.fields import Base64, ContentHash, DeviceId

PROOF_NAMESPACE = UUID("8a3c2f51-64d7-4c0e-b1f9-2e5d7a90c413")
_PROOF_IDS = ItemUuid5(PROOF_NAMESPACE)


class ProofLockInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: DeviceId
    content_hash: ContentHash = Field(description="SHA-256 of the content, 64 hex characters")
    signature: Base64 = Field(
        description="base64 Ed25519 signature by the device's key over the raw 32 hash bytes"
    )
    captured_at: datetime | None = None


class ProofLockOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    proof_id: UUID
    content_hash: str
    device_id: str
    captured_at: datetime | None = None
    locked_at: datetime
    already_locked: bool


def proof_id_text(job_id: str, item_index: int) -> str:
    """The id of the proof an item locks, the same for every delivery of the item."""
    return _PROOF_IDS.text(job_id, str(item_index))


def proof_id(job_id: UUID, item_index: int) -> UUID:
    """``proof_id_text`` as a UUID."""
    return UUID(proof_id_text(str(job_id), item_index))


class ProofLockHandler(RegistryBacked, Handler[ProofLockInput, ProofLockOutput]):
    job_type = "proof_lock"
    input_model = ProofLockInput
    output_model = ProofLockOutput
    verifies_signatures = True

    def routing_key(self, item: ProofLockInput, *, job_id: UUID, item_index: int) -> str:
        return item.content_hash  # locks of one hash are arbitrated in order

    async def handle(self, item: ProofLockInput, context: ItemContext) -> JsonOutput:
        key = await self.registry.public_key(item.device_id)
        if key is None:
            raise PermanentError(
                "device_not_enrolled", f"device {item.device_id!r} is not enrolled"
            )
        job, index = job_id_text(context.job_id), context.item_index
        row = await self.registry.verify_then_lock(
            (
                key,
                base64.b64decode(item.signature),
                item.content_hash,
                proof_id_text(job, index),
                item.device_id,
                item.captured_at,
                job,
                index,
            )
        )
        if row is None:
            raise PermanentError(
                "invalid_signature",
                f"signature does not verify with device {item.device_id!r}'s key "
                "over the 32 bytes of content_hash",
            )
        content_hash, locked_proof_id, device_id, captured_at, locked_at, by_job, by_index = row
        mine = by_job == job and by_index == index
        if not mine and device_id != item.device_id:
            raise PermanentError(
                "already_locked", f"content_hash is locked by another device ({device_id!r})"
            )
        # The row's values come typed from the database (tests hold this to the model).
        return JsonOutput(
            proof_id=locked_proof_id,
            content_hash=content_hash,
            device_id=device_id,
            captured_at=captured_at,
            locked_at=locked_at,
            already_locked=not mine,
        )
