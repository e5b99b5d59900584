"""API keys: random secrets shown once; only their SHA-256 hash is stored."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from events.models import UserId
from storage.tables import ApiKey

KEY_PREFIX = "aob_"


@dataclass(frozen=True)
class NewKey:
    key_id: uuid.UUID
    user_id: str
    secret: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class InvalidUserId(ValueError):
    """A user id the events cannot carry (``events.models.UserId``)."""


_USER_ID = TypeAdapter(UserId)


def create_key(
    session: Session,
    *,
    user_id: str,
    interactive_max_items: int | None = None,
    operator: bool = False,
) -> NewKey:
    """Raises ``InvalidUserId`` for a user id that jobs could not carry in their events."""
    try:
        _USER_ID.validate_python(user_id)
    except ValidationError:
        raise InvalidUserId(
            "a user id is 1 to 128 characters, without control characters"
        ) from None
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=uuid.uuid4(),
        key_hash=hash_key(secret),
        prefix=secret[:12],
        user_id=user_id,
        interactive_max_items=interactive_max_items,
        operator=operator,
    )
    session.add(key)
    session.commit()
    return NewKey(key.id, user_id, secret)


class KeyOwner(NamedTuple):
    user_id: str
    interactive_max_items: int | None  # None: the API's default


def owner_of_key_hash(session: Session, *, key_hash: str) -> KeyOwner | None:
    """The owner of the key with this hash (and what the key may do), unless it was
    revoked."""
    row = session.execute(
        select(ApiKey.user_id, ApiKey.interactive_max_items).where(
            ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
        )
    ).first()
    return None if row is None else KeyOwner(row[0], row[1])


def user_for_key_hash(session: Session, *, key_hash: str) -> str | None:
    """The owner of the key with this hash, unless it was revoked."""
    owner = owner_of_key_hash(session, key_hash=key_hash)
    return None if owner is None else owner.user_id


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
