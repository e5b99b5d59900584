"""Request dependencies: the database session, the caller (from the API key) and the
publisher."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ingest_api.api_keys import hash_key, user_for_key
from ingest_api.errors import NotAuthenticated, RateLimited
from ingest_api.publisher import EventPublisher
from ingest_api.settings import ApiSettings

_bearer = HTTPBearer(auto_error=False)


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("send an API key as 'Authorization: Bearer <key>'")
    user = user_for_key(session, secret=credentials.credentials)
    if user is None:
        raise NotAuthenticated("the API key is invalid or revoked")
    wait = request.app.state.rate_limiter.take(hash_key(credentials.credentials))
    if wait:
        raise RateLimited(wait)
    return user


CurrentUser = Annotated[str, Depends(get_current_user)]


def get_publisher(request: Request) -> EventPublisher:
    return request.app.state.publisher  # type: ignore[no-any-return]


PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
