"""API keys: random secrets shown once; only their SHA-256 hash is stored."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage.tables import ApiKey

KEY_PREFIX = "aob_"


@dataclass(frozen=True)
class NewKey:
    key_id: uuid.UUID
    user_id: str
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, user_id: str) -> NewKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(id=uuid.uuid4(), key_hash=hash_key(secret), prefix=secret[:12], user_id=user_id)
    session.add(key)
    session.commit()
    return NewKey(key.id, user_id, secret)


def user_for_key(session: Session, *, secret: str) -> str | None:
    return session.scalar(
        select(ApiKey.user_id).where(
            ApiKey.key_hash == hash_key(secret), ApiKey.revoked_at.is_(None)
        )
    )


def list_keys(session: Session, *, user_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    return list(session.scalars(query))


def revoke_key(session: Session, *, key_id: uuid.UUID) -> bool:
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]
