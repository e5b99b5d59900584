"""Bulk device enrollment: a device and its Ed25519 public key enter the registry once.

- A new device → enrolled (``already_enrolled: false``).
- The same device with the same key again → success, ``already_enrolled: true``.
- The same device with another key → ``device_key_conflict``.
- Bytes that are not an Ed25519 public key → ``invalid_public_key``.
"""

import base64
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from archive_jobs.device_registry import Enrollment, RegistryBacked
from archive_jobs.signatures import fingerprint, is_valid_public_key
from jobtypes.contract import Handler, ItemContext, PermanentError
from jobtypes.fields import Base64, DeviceId


class EnrollmentInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device_id: DeviceId
    public_key: Base64 = Field(description="base64 of the raw 32-byte Ed25519 public key")
    platform: str | None = Field(None, max_length=64)
    label: str | None = Field(None, max_length=256)


class EnrollmentOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    device_id: str
    key_fingerprint: str = Field(description="SHA-256 hex of the raw public key")
    enrolled_at: datetime
    already_enrolled: bool


class EnrollmentHandler(RegistryBacked, Handler[EnrollmentInput, EnrollmentOutput]):
    job_type = "enrollment"
    input_model = EnrollmentInput
    output_model = EnrollmentOutput

    def routing_key(self, item: EnrollmentInput, *, job_id: UUID, item_index: int) -> str:
        return item.device_id  # one device's enrollments are decided in order

    async def handle(self, item: EnrollmentInput, context: ItemContext) -> EnrollmentOutput:
        raw = base64.b64decode(item.public_key)
        if not is_valid_public_key(raw):
            raise PermanentError(
                "invalid_public_key",
                f"public_key is not an Ed25519 public key ({len(raw)} bytes; "
                "want the 32-byte encoding of a curve point)",
            )
        row = await self.registry.enroll(
            Enrollment(
                item.device_id,
                raw,
                fingerprint(raw),
                item.platform,
                item.label,
                context.job_id,
                context.item_index,
            )
        )
        mine = (row.job_id, row.item_index) == (context.job_id, context.item_index)
        if not mine and row.public_key != raw:
            raise PermanentError(
                "device_key_conflict",
                f"device {item.device_id!r} is enrolled with another key "
                f"(fingerprint {row.key_fingerprint})",
            )
        return EnrollmentOutput(
            device_id=row.device_id,
            key_fingerprint=row.key_fingerprint,
            enrolled_at=row.enrolled_at,
            already_enrolled=not mine,
        )
