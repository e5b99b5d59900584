"""Real Ed25519 devices for the tests: keys, signatures and the items that use them."""

import base64
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def new_hash() -> str:
    return hashlib.sha256(os.urandom(32)).hexdigest()


@dataclass
class Device:
    device_id: str = field(default_factory=lambda: f"device-{uuid.uuid4()}")
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def raw_public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_key(self) -> str:
        return b64(self.raw_public_key)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.raw_public_key).hexdigest()

    def enrollment(self, **extra: Any) -> dict[str, Any]:
        return {"device_id": self.device_id, "public_key": self.public_key, **extra}

    def sign(self, content_hash: str) -> str:
        return b64(self.key.sign(bytes.fromhex(content_hash)))

    def lock(self, content_hash: str, **extra: Any) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "content_hash": content_hash,
            "signature": self.sign(content_hash),
            **extra,
        }
