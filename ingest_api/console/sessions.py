"""The console's sign-in sessions, kept in PostgreSQL (``console_sessions``): every API
process sees the same ones, signing out ends one everywhere, and revoking the key it was
opened with ends it at the next request. The browser's cookie holds a random token; only its
SHA-256 hash is stored, beside the session's CSRF token."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ingest_api.api_keys import hash_key
from storage.tables import ApiKey, ConsoleSession


@dataclass(frozen=True)
class SignedIn:
    """Who a console request comes from: the owner of the key the session was opened with."""

    user_id: str
    key_id: UUID
    key_hash: str
    operator: bool
    interactive_max_items: int | None
    csrf_token: str

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token.encode())


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, *, api_key: str, lifetime: timedelta) -> str | None:
    """A new session for the owner of ``api_key`` (None: no such key, or revoked); returns the
    token for the cookie. Sessions past their time are cleared on the way."""
    key = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(api_key), ApiKey.revoked_at.is_(None))
    )
    if key is None:
        session.rollback()
        return None
    now = datetime.now(UTC)
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            token_hash=_token_hash(token),
            key_id=key.id,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + lifetime,
        )
    )
    session.commit()
    return token


def signed_in(session: Session, *, token: str) -> SignedIn | None:
    """The session of this cookie token, unless it expired or its key was revoked."""
    row = session.execute(
        select(ApiKey, ConsoleSession.csrf_token)
        .join(ConsoleSession, ConsoleSession.key_id == ApiKey.id)
        .where(
            ConsoleSession.token_hash == _token_hash(token),
            ConsoleSession.expires_at > datetime.now(UTC),
            ApiKey.revoked_at.is_(None),
        )
    ).first()
    session.rollback()  # end the read: the connection goes back to the pool
    if row is None:
        return None
    key, csrf_token = row
    return SignedIn(
        user_id=key.user_id,
        key_id=key.id,
        key_hash=key.key_hash,
        operator=key.operator,
        interactive_max_items=key.interactive_max_items,
        csrf_token=csrf_token,
    )


def close_session(session: Session, *, token: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token)))
    session.commit()
