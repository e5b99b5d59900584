"""Request dependencies: the database session, the caller (from the API key) and the
publisher."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ingest_api.api_keys import hash_key
from ingest_api.errors import NotAuthenticated, RateLimited
from ingest_api.publisher import EventPublisher
from ingest_api.quota import Records
from ingest_api.settings import ApiSettings

_bearer = HTTPBearer(auto_error=False)

# Every dependency is ``async def``: FastAPI runs a plain ``def`` one in a worker thread,
# a hand-off that costs more than these take.


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request, made on the event loop (making one does no I/O: a connection
    is taken from the pool at its first query, in whichever thread runs it). Closing it
    only needs a thread when a transaction is still open (its rollback is I/O)."""
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]


async def get_records(request: Request) -> Records:
    return request.app.state.records


RecordsDep = Annotated[Records, Depends(get_records)]


@dataclass(frozen=True)
class Caller:
    """Who calls: the owner of the API key (never a request field), and the key's hash."""

    user_id: str
    key_hash: str
    interactive_max_items: int | None = None  # the key's own cap (None: the API's)


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("send an API key as 'Authorization: Bearer <key>'")
    key_hash = hash_key(credentials.credentials)
    settings = request.app.state.settings
    admission = await request.app.state.admissions.admit(
        key_hash=key_hash,
        rate=settings.api_rate_limit_per_s,
        burst=settings.api_rate_limit_burst,
    )
    if admission is None:
        raise NotAuthenticated("the API key is invalid or revoked")
    if admission.wait_s:
        raise RateLimited(admission.wait_s)
    owner = admission.owner
    return Caller(owner.user_id, key_hash, owner.interactive_max_items)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_current_user(caller: CallerDep) -> str:
    return caller.user_id


CurrentUser = Annotated[str, Depends(get_current_user)]


async def get_publisher(request: Request) -> EventPublisher:
    return request.app.state.publisher


PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
